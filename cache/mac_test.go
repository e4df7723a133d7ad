package cache

import (
	"net"
	"strings"
	"testing"
)

func TestNormalizeMAC(t *testing.T) {
	tests := []struct {
		in   string
		want string
		ok   bool
	}{
		{"aa:bb:cc:dd:ee:ff", "aabbccddeeff", true},
		{"AA:BB:CC:DD:EE:FF", "aabbccddeeff", true},
		{"aa-bb-cc-dd-ee-ff", "aabbccddeeff", true},
		{"aabb.ccdd.eeff", "aabbccddeeff", true},
		{"AABBCCDDEEFF", "aabbccddeeff", true},
		{"aabbccddeeff", "aabbccddeeff", true},
		{"aabbcc-ddeeff", "aabbccddeeff", true}, // HPE single-dash; net.ParseMAC rejects it
		{" 00:11:22:33:44:55\t", "001122334455", true},
		{"0A:1b:2C:3d:4E:5f", "0a1b2c3d4e5f", true},
		{"", "", false},
		{"aa:bb:cc:dd:ee", "", false},          // 5 octets
		{"aa:bb:cc:dd:ee:ff:00:11", "", false}, // EUI-64
		{"aabbccddeeff00", "", false},          // 7 octets
		{"aabbccddeef", "", false},             // odd digits
		{"aa:bb:cc:dd:ee:fg", "", false},       // not hex
		{":aa:bb:cc:dd:ee:ff", "", false},      // leading separator
		{"aa:bb:cc:dd:ee:ff:", "", false},      // trailing separator
		{"aa::bb:cc:dd:ee:ff", "", false},      // doubled separator
		{"aa bb cc dd ee ff", "", false},       // inner space
		{"aa_bb_cc_dd_ee_ff", "", false},       // unknown separator
		{"host/aa:bb:cc:dd:ee:ff", "", false},  // not only a MAC
		{"aa:bb:cc:dd:ee:ff\x00", "", false},   // NUL
		{"ａａbbccddeeff", "", false},            // full-width
	}
	for _, tt := range tests {
		got, ok := NormalizeMAC(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("NormalizeMAC(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func FuzzNormalizeMAC(f *testing.F) {
	for _, s := range []string{"aa:bb:cc:dd:ee:ff", "aabb.ccdd.eeff", "AA-BB-CC-DD-EE-FF", "aabbccddeeff", "aa:bb"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := NormalizeMAC(s)
		// Whatever net.ParseMAC reads as 6 octets, we read the same way.
		if hw, err := net.ParseMAC(strings.TrimSpace(s)); err == nil && len(hw) == 6 {
			if want := strings.ReplaceAll(hw.String(), ":", ""); !ok || want != got {
				t.Fatalf("NormalizeMAC(%q) = %q, %v; net.ParseMAC says %q", s, got, ok, want)
			}
		}
		if !ok {
			if got != "" {
				t.Fatalf("rejected %q but returned %q", s, got)
			}
			return
		}
		if len(got) != 12 || strings.Trim(got, "0123456789abcdef") != "" {
			t.Fatalf("NormalizeMAC(%q) = %q, not 12 lowercase hex digits", s, got)
		}
		if again, ok := NormalizeMAC(got); !ok || again != got {
			t.Fatalf("not idempotent: %q -> %q -> %q", s, got, again)
		}
	})
}
