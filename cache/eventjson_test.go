package cache

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

func TestEventJSONMatchesEncodingJSON(t *testing.T) {
	tricky := "a\"b\\c\b\f\n\r\t\x00\x1f<>&\u2028\u2029é😀\xff\xc3(end"
	for _, ev := range []Event{
		{ID: "x", Type: "NAC Client Access Allowed", Time: time.Unix(0, 0).UTC()},
		{ID: "0123", Type: "t", Time: time.Date(2026, 11, 26, 22, 1, 2, 123456789, time.UTC),
			MAC: "aa:bb:cc:dd:ee:ff", Identity: "user@example.org", Reason: "cache hit",
			Fields: map[string]string{"vlan": "30", "client": "sw1", "a": "", "Z": "z"}},
		{ID: tricky, Type: tricky, Time: time.Date(1999, 1, 1, 0, 0, 0, 0, time.FixedZone("x", -5*3600)),
			MAC: tricky, Identity: tricky, Reason: tricky, Fields: map[string]string{tricky: tricky, "": "e"}},
		{ID: "empty-fields", Type: "t", Time: time.Now(), Fields: map[string]string{}},
	} {
		want, err := json.Marshal(eventRecord(ev))
		if err != nil {
			t.Fatal(err)
		}
		got, err := appendEventJSON(nil, &ev)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("event %q:\n got %s\nwant %s", ev.ID, got, want)
		}
	}
	if _, err := appendEventJSON(nil, &Event{ID: "x", Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}); err == nil {
		t.Error("year 10000 encoded without error")
	}
}

func FuzzEventJSON(f *testing.F) {
	f.Add("id", "type", int64(0), "mac", "ident", "reason", "k", "v")
	f.Add("\u2028", "<&>", int64(-1e18), "\xff", "\x00", "é", "\t", "\xc3")
	f.Fuzz(func(t *testing.T, id, typ string, ns int64, mac, ident, reason, k, v string) {
		ev := Event{ID: id, Type: typ, Time: time.Unix(0, ns).UTC(), MAC: mac, Identity: ident, Reason: reason,
			Fields: map[string]string{k: v, "vlan": v}}
		want, werr := json.Marshal(eventRecord(ev))
		got, gerr := appendEventJSON(nil, &ev)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("errors differ: %v vs %v", gerr, werr)
		}
		if werr == nil && !bytes.Equal(got, want) {
			t.Fatalf("\n got %s\nwant %s", got, want)
		}
	})
}
