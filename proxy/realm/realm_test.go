package realm

import (
	"errors"
	"strings"
	"testing"
)

var parseCases = []struct {
	in         string
	user       string
	realm      string
	decoration string
	reason     Reason // "" when valid
}{
	{in: "alice@example.edu", user: "alice", realm: "example.edu"},
	{in: "Alice.Smith@Example.EDU", user: "Alice.Smith", realm: "example.edu"},
	{in: "@example.edu", realm: "example.edu"},
	{in: "anonymous@eduroam.univ-x.fr", user: "anonymous", realm: "eduroam.univ-x.fr"},
	{in: "homerealm.example.org!bob@otherrealm.example.net", user: "homerealm.example.org!bob", realm: "otherrealm.example.net", decoration: "homerealm.example.org"},
	{in: "bob", user: "bob"},
	{in: "001122334455", user: "001122334455"},
	{in: "jürgen@universität.de", user: "jürgen", realm: "universität.de"},
	{in: "a+tag@x.y", user: "a+tag", realm: "x.y"},
	{in: "", reason: ReasonEmpty},
	{in: strings.Repeat("a", 250) + "@x.y", reason: ReasonTooLong},
	{in: "a\xffb@x.y", reason: ReasonUTF8},
	{in: " alice@example.edu", reason: ReasonControl},
	{in: "alice@example.edu ", reason: ReasonControl},
	{in: "alice@exa\x00mple.edu", reason: ReasonControl},
	{in: "alice@bob@example.edu", reason: ReasonMultipleAt},
	{in: "alice@localhost", reason: ReasonSingleLabel},
	{in: "alice@", reason: ReasonBadRealm},
	{in: "alice@.example.edu", reason: ReasonBadRealm},
	{in: "alice@example.edu.", reason: ReasonBadRealm},
	{in: "alice@exa_mple.edu", reason: ReasonBadRealm},
	{in: "alice@-example.edu", reason: ReasonBadRealm},
	{in: "alice.@example.edu", reason: ReasonBadUser},
	{in: ".alice@example.edu", reason: ReasonBadUser},
	{in: "al(ice)@example.edu", reason: ReasonBadUser},
	{in: "al\"ice@example.edu", reason: ReasonBadUser},
}

func TestParse(t *testing.T) {
	for _, tc := range parseCases {
		n, err := Parse(tc.in)
		if tc.reason != "" {
			var e *Error
			if !errors.As(err, &e) || e.Reason != tc.reason {
				t.Errorf("Parse(%q) = %+v, %v; want reason %s", tc.in, n, err, tc.reason)
			}
			continue
		}
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		if n.User != tc.user || n.Realm != tc.realm || n.Decoration != tc.decoration {
			t.Errorf("Parse(%q) = %+v; want user %q realm %q decoration %q", tc.in, n, tc.user, tc.realm, tc.decoration)
		}
	}
}

func TestMatcher(t *testing.T) {
	m, err := NewMatcher([]string{"example.edu", "*.campus.example.org", "Upper.EDU."})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		realm string
		want  bool
	}{
		{"example.edu", true},
		{"EXAMPLE.edu", true},
		{"sub.example.edu", false},
		{"campus.example.org", false},
		{"a.campus.example.org", true},
		{"a.b.campus.example.org", true},
		{"xcampus.example.org", false},
		{"upper.edu", true},
		{"", false},
		{"other.edu", false},
	} {
		if got := m.Match(tc.realm); got != tc.want {
			t.Errorf("Match(%q) = %v, want %v", tc.realm, got, tc.want)
		}
	}
	var nilM *Matcher
	if nilM.Match("example.edu") || nilM.Len() != 0 {
		t.Error("nil matcher matches")
	}
	if m.Len() != 3 {
		t.Errorf("Len = %d", m.Len())
	}
}

func TestCheckPattern(t *testing.T) {
	for _, tc := range []struct {
		p  string
		ok bool
	}{
		{"example.edu", true}, {"*.example.edu", true}, {"*.edu", true},
		{"edu", false}, {"*", false}, {"a*.example.edu", false}, {"ex ample.edu", false}, {"", false},
	} {
		if err := CheckPattern(tc.p); (err == nil) != tc.ok {
			t.Errorf("CheckPattern(%q) = %v, want ok %v", tc.p, err, tc.ok)
		}
	}
}

func TestUnroutable(t *testing.T) {
	for _, tc := range []struct {
		realm string
		bad   bool
	}{
		{"wlan.mnc001.mcc001.3gppnetwork.org", true}, {"corp.local", true}, {"example.edu", false},
		{"not3gppnetwork.org", false}, {"x.invalid", true},
	} {
		if _, bad := Unroutable(tc.realm); bad != tc.bad {
			t.Errorf("Unroutable(%q) = %v, want %v", tc.realm, bad, tc.bad)
		}
	}
}

func TestSSID(t *testing.T) {
	for _, tc := range []struct {
		in   string
		ssid string
		ok   bool
	}{
		{"00-10-A4-23-19-C0:eduroam", "eduroam", true},
		{"00:10:a4:23:19:c0:eduroam", "eduroam", true},
		{"0010.a423.19c0:eduroam", "eduroam", true},
		{"0010a42319c0:eduroam", "eduroam", true},
		{"0010A42319C0;eduroam", "eduroam", true},
		{"00-10-A4-23-19-C0:my:ssid", "my:ssid", true},
		{"00-10-A4-23-19-C0", "", false},
		{"00-10-A4-23-19-C0:", "", false},
		{"eduroam", "", false},
		{"00-10-A4-23-19:eduroam", "", false},
		{"--0010a42319c0:eduroam", "", false},
		{"00-10-A4-23-19-C0 eduroam", "", false},
	} {
		ssid, ok := SSID(tc.in)
		if ssid != tc.ssid || ok != tc.ok {
			t.Errorf("SSID(%q) = %q, %v; want %q, %v", tc.in, ssid, ok, tc.ssid, tc.ok)
		}
	}
}
