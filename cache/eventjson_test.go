package cache

import (
	"bytes"
	"encoding/json"
	"maps"
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

// A list of fields encodes to the record a map of them would, up to the
// fields' order, and reads back the same.
func TestEncodeEventFields(t *testing.T) {
	s := mustOpen(t, "", Options{})
	fields := []Field{{"nas", "sw1"}, {"auth_type", "mab"}, {"vlan", "<30>"}, {"empty", ""}}
	ev := Event{Type: "NAC Client Access Allowed", MAC: "aabbcc000001", Identity: "aabbcc000001"}
	enc, err := s.EncodeEventFields(ev, fields)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AppendEncoded([]EncodedEvent{enc}); err != nil {
		t.Fatal(err)
	}
	got, err := s.PendingEvents(0)
	if err != nil || len(got) != 1 {
		t.Fatalf("%v %v", got, err)
	}
	want := map[string]string{"nas": "sw1", "auth_type": "mab", "vlan": "<30>", "empty": ""}
	if g := got[0]; g.Type != ev.Type || g.MAC != ev.MAC || g.ID == "" || g.Time.IsZero() || !maps.Equal(g.Fields, want) {
		t.Fatalf("read back %+v", g)
	}
	if _, err := s.EncodeEventFields(Event{ID: "x", Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}, nil); err == nil {
		t.Fatal("year 10000 encoded")
	}
}
