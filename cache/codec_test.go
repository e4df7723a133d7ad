package cache

import (
	"reflect"
	"testing"
	"time"
)

func TestCodecRoundTrip(t *testing.T) {
	tests := []Entry{
		{},
		mab(1, epoch),
		tls(2, "host/pc.corp.example", epoch),
		{MAC: "aabbccddeeff", AuthType: AuthEAPTLS, Identity: Identity{CN: "ü\x00"},
			Authorization: Authorization{SessionTimeout: -time.Second, Attributes: []Attribute{{Raw: []byte{}}}},
			ExpiresAt:     time.Unix(0, -5).UTC()},
	}
	for i, e := range tests {
		got, err := decodeEntry(encodeEntry(&e))
		if err != nil {
			t.Fatalf("%d: %v", i, err)
		}
		want := e
		for j := range want.Authorization.Attributes { // empty raw decodes as nil
			if len(want.Authorization.Attributes[j].Raw) == 0 {
				want.Authorization.Attributes[j].Raw = nil
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%d:\n got %+v\nwant %+v", i, got, want)
		}
	}
}

func TestDecodeEntryRejects(t *testing.T) {
	good := encodeEntry(&Entry{MAC: "aabbccddeeff", AuthType: AuthMAB, Authorization: Authorization{
		Attributes: []Attribute{{Name: "Filter-Id", Value: "x"}}}})
	noAttrs := encodeEntry(&Entry{MAC: "aabbccddeeff", AuthType: AuthMAB})
	tests := map[string][]byte{
		"empty":         nil,
		"short header":  good[:5],
		"wrong version": append([]byte{1}, good[1:]...),
		"truncated":     good[:len(good)-1],
		"trailing":      append(append([]byte{}, good...), 0),
		"huge count":    append(append([]byte{}, noAttrs[:len(noAttrs)-1]...), 0xff, 0xff, 0xff, 0xff, 0x0f),
	}
	for name, b := range tests {
		if _, err := decodeEntry(b); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
}

func FuzzDecodeEntry(f *testing.F) {
	for _, e := range []Entry{mab(1, epoch), tls(2, "alice", epoch)} {
		f.Add(encodeEntry(&e))
	}
	f.Add([]byte{recordVersion, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeEntry(b)
		if err != nil {
			return
		}
		// Decoding is canonical from the first round on.
		b2 := encodeEntry(&e)
		e2, err := decodeEntry(b2)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if !reflect.DeepEqual(e, e2) {
			t.Fatalf("round trip differs:\n%+v\n%+v", e, e2)
		}
		if exp, ok := recordExpiry(b2); !ok || exp != unixNano(e.ExpiresAt) {
			t.Fatalf("recordExpiry = %d, %v", exp, ok)
		}
	})
}
