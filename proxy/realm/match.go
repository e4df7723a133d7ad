package realm

import (
	"errors"
	"fmt"
	"strings"
)

// Matcher matches realms against a list of patterns: "example.edu"
// matches that realm exactly, "*.example.edu" any realm below it (not
// example.edu itself; list both for both). Comparison ignores case and
// a trailing dot.
type Matcher struct {
	exact    map[string]bool
	suffixes []string // ".example.edu"
}

// NewMatcher compiles patterns; a pattern that is not a realm or a
// "*." wildcard over one is an error.
func NewMatcher(patterns []string) (*Matcher, error) {
	m := &Matcher{exact: map[string]bool{}}
	for _, p := range patterns {
		if err := CheckPattern(p); err != nil {
			return nil, err
		}
		p = normalize(p)
		if rest, ok := strings.CutPrefix(p, "*."); ok {
			m.suffixes = append(m.suffixes, "."+rest)
		} else {
			m.exact[p] = true
		}
	}
	return m, nil
}

// CheckPattern says whether p is a usable realm pattern (for config
// validation).
func CheckPattern(p string) error {
	q := normalize(p)
	rest, wild := strings.CutPrefix(q, "*.")
	if !wild {
		rest = q
	}
	if err := checkRealm(rest); err != nil {
		var e *Error
		if wild && errors.As(err, &e) && e.Reason == ReasonSingleLabel {
			return nil // "*.edu" is a wide but valid pattern
		}
		return fmt.Errorf("%q is not a realm or *.realm: %s", p, strings.TrimPrefix(err.Error(), "realm: malformed NAI: "))
	}
	return nil
}

func normalize(s string) string {
	return strings.ToLower(strings.TrimSuffix(strings.TrimSpace(s), "."))
}

// Match reports whether realm (as Parse returns it) matches a pattern.
func (m *Matcher) Match(realm string) bool {
	if m == nil || realm == "" {
		return false
	}
	realm = normalize(realm)
	if m.exact[realm] {
		return true
	}
	for _, s := range m.suffixes {
		if strings.HasSuffix(realm, s) {
			return true
		}
	}
	return false
}

// Len is the number of patterns.
func (m *Matcher) Len() int {
	if m == nil {
		return 0
	}
	return len(m.exact) + len(m.suffixes)
}

// unroutable are realms that are never anyone's home: mobile-network
// identities (3GPP, RFC 7542 §3.3 via EAP-SIM/AKA), and names reserved
// for local use. The eduroam operational guidance (AARNet, GÉANT) filters
// them at the SP, so that they never burden the federation.
var unroutable = []string{".3gppnetwork.org", ".local", ".localdomain", ".invalid", ".test", ".example", ".localhost"}

// Unroutable reports whether realm can never be routed through a
// federation, and why.
func Unroutable(realm string) (string, bool) {
	r := "." + normalize(realm)
	for _, s := range unroutable {
		if strings.HasSuffix(r, s) {
			return "reserved realm " + strings.TrimPrefix(s, "."), true
		}
	}
	return "", false
}
