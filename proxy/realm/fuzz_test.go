package realm

import (
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics, that what it accepts is
// consistent (the realm is the lower-cased tail after the last '@', and
// valid again when parsed on its own), and that it rejects anything longer
// than a User-Name can be.
func FuzzParse(f *testing.F) {
	for _, tc := range parseCases {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := Parse(s)
		if err != nil {
			return
		}
		if len(s) > MaxLen {
			t.Fatalf("accepted %d octets", len(s))
		}
		at := strings.LastIndexByte(s, '@')
		if at < 0 {
			if n.Realm != "" || n.User != s {
				t.Fatalf("no '@' but %+v", n)
			}
			return
		}
		if n.Realm != strings.ToLower(s[at+1:]) || n.User != s[:at] {
			t.Fatalf("%q parsed to %+v", s, n)
		}
		if _, err := Parse("@" + n.Realm); err != nil {
			t.Fatalf("realm %q of accepted %q does not parse alone: %v", n.Realm, s, err)
		}
		m, _ := NewMatcher([]string{n.Realm})
		if m == nil || !m.Match(n.Realm) {
			t.Fatalf("realm %q does not match itself", n.Realm)
		}
	})
}

// FuzzSSID checks that SSID never panics and returns a tail of its input.
func FuzzSSID(f *testing.F) {
	for _, s := range []string{"00-10-A4-23-19-C0:eduroam", "0010.a423.19c0:x", "", ":", "aa:bb"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ssid, ok := SSID(s)
		if ok && (ssid == "" || !strings.HasSuffix(s, ssid)) {
			t.Fatalf("SSID(%q) = %q", s, ssid)
		}
	})
}
