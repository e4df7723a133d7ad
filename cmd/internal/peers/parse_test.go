package peers

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func readTestdata(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParseRadclient(t *testing.T) {
	tests := []struct {
		file  string
		code  string
		attrs map[string][]string
	}{
		{"radclient_mab_accept.txt", "Access-Accept", map[string][]string{
			"Tunnel-Type": {"VLAN"}, "Tunnel-Medium-Type": {"IEEE-802"}, "Tunnel-Private-Group-Id": {"100"},
		}},
		{"radclient_pap_accept.txt", "Access-Accept", map[string][]string{
			"Reply-Message": {`hi "alice"`}, "Tunnel-Password": {"tunnel-secret"},
		}},
		{"radclient_reject.txt", "Access-Reject", map[string][]string{}},
		{"radclient_acct.txt", "Accounting-Response", map[string][]string{}},
		{"radclient_noreply.txt", "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			got := parseRadclient(readTestdata(t, tc.file))
			if got.Code != tc.code || !reflect.DeepEqual(got.Attrs, tc.attrs) {
				t.Fatalf("got %q %v, want %q %v", got.Code, got.Attrs, tc.code, tc.attrs)
			}
		})
	}
}

func TestParseEAPOLTest(t *testing.T) {
	tests := []struct {
		file       string
		success    bool
		ok, bad    int
		tls        string
		vlan       string
		minReqFrag int
	}{
		{"eapol_test_tls13_success.txt", true, 1, 0, "TLSv1.3", "200", 0},
		{"eapol_test_revoked.txt", false, 0, 1, "TLSv1.2", "", 0},
		{"eapol_test_longchain.txt", true, 1, 0, "TLSv1.2", "", 3},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			got := parseEAPOLTest(readTestdata(t, tc.file))
			if got.Success != tc.success || got.MPPEOK != tc.ok || got.MPPEMismatch != tc.bad ||
				got.TLSVersion != tc.tls || got.VLAN() != tc.vlan || got.RequestFragments < tc.minReqFrag {
				t.Fatalf("got success=%v mppe=%d/%d tls=%q vlan=%q reqfrag=%d challenges=%d",
					got.Success, got.MPPEOK, got.MPPEMismatch, got.TLSVersion, got.VLAN(), got.RequestFragments, got.Challenges)
			}
		})
	}
}

func TestNormalizeMAC(t *testing.T) {
	tests := map[string]string{
		"aa:bb:cc:dd:ee:ff": "aabbccddeeff",
		"AA-BB-CC-DD-EE-FF": "aabbccddeeff",
		"aabb.ccdd.eeff":    "aabbccddeeff",
		"aabbccddeeff":      "aabbccddeeff",
		"aabbccddeeff00":    "",
		"gg:bb:cc:dd:ee:ff": "",
		"":                  "",
	}
	for in, want := range tests {
		if got := NormalizeMAC(in); got != want {
			t.Errorf("NormalizeMAC(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzParseRadclient(f *testing.F) {
	for _, name := range []string{"radclient_mab_accept.txt", "radclient_reject.txt", "radclient_noreply.txt"} {
		f.Add(readTestdata(f, name))
	}
	f.Fuzz(func(t *testing.T, out string) {
		r := parseRadclient(out)
		if r.Code == "" && r.Attrs != nil {
			t.Fatalf("attributes without a reply code: %v", r.Attrs)
		}
	})
}

func FuzzParseEAPOLTest(f *testing.F) {
	f.Add("RADIUS message: code=2 (Access-Accept) identifier=3 length=195\n   Attribute 81 (Tunnel-Private-Group-Id) length=5\n      Value: 00\nMPPE keys OK: 1  mismatch: 0\nSUCCESS\n")
	f.Fuzz(func(t *testing.T, out string) {
		r := parseEAPOLTest(out)
		_ = r.VLAN()
		if r.Success && strings.TrimSpace(out) == "" {
			t.Fatal("success from empty output")
		}
	})
}
