package realm

import (
	"strings"
	"unicode/utf8"
)

// MaxLen is the longest NAI accepted: the 253 octets of a RADIUS
// User-Name (RFC 7542 §2.3).
const MaxLen = 253

// NAI is a parsed Network Access Identifier.
type NAI struct {
	// User is everything before the last '@', decoration included
	// ("homerealm!user" stays whole: the route is the realm after '@').
	User string
	// Realm is the realm in lower case (realms compare case-insensitively,
	// RFC 7542 §2.4); "" when the identity has none.
	Realm string
	// Decoration is the first realm of a decorated NAI
	// ("homerealm!user@otherrealm", RFC 7542 §3.3.1), lower case; "" if
	// the NAI is not decorated.
	Decoration string
}

// Reason says why an identity is not a valid NAI. The values are short
// enough to be metric labels.
type Reason string

// Reasons for rejecting an identity.
const (
	ReasonEmpty       Reason = "empty"
	ReasonTooLong     Reason = "too_long"
	ReasonUTF8        Reason = "invalid_utf8"
	ReasonControl     Reason = "control_or_space"
	ReasonMultipleAt  Reason = "multiple_at"
	ReasonBadUser     Reason = "bad_username"
	ReasonBadRealm    Reason = "bad_realm"
	ReasonSingleLabel Reason = "single_label_realm"
)

// Error is a malformed identity: what was wrong, and where.
type Error struct {
	Reason Reason
	Detail string
}

func (e *Error) Error() string {
	if e.Detail == "" {
		return "realm: malformed NAI: " + string(e.Reason)
	}
	return "realm: malformed NAI: " + string(e.Reason) + ": " + e.Detail
}

func fail(r Reason, detail string) (NAI, error) { return NAI{}, &Error{Reason: r, Detail: detail} }

// Parse parses a User-Name as an NAI (RFC 7542 §2.2). An identity without
// '@' is a valid NAI without a realm. Malformed identities, including
// those with more than one '@' (a decorated NAI carries '!' instead),
// surrounding whitespace or a single-label realm, are errors naming the
// reason: such requests must be rejected at the site, never forwarded
// (RFC 7542 §3 and the eduroam policy of filtering them locally).
func Parse(s string) (NAI, error) {
	switch {
	case s == "":
		return fail(ReasonEmpty, "")
	case len(s) > MaxLen:
		return fail(ReasonTooLong, "")
	case !utf8.ValidString(s):
		return fail(ReasonUTF8, "")
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f || (r >= 0x80 && r <= 0x9f) {
			return fail(ReasonControl, "")
		}
	}
	at := strings.IndexByte(s, '@')
	if at < 0 {
		if err := checkUser(s); err != nil {
			return NAI{}, err
		}
		return NAI{User: s}, nil
	}
	if strings.IndexByte(s[at+1:], '@') >= 0 {
		return fail(ReasonMultipleAt, "")
	}
	user, realm := s[:at], s[at+1:]
	if user != "" {
		if err := checkUser(user); err != nil {
			return NAI{}, err
		}
	}
	if err := checkRealm(realm); err != nil {
		return NAI{}, err
	}
	n := NAI{User: user, Realm: strings.ToLower(realm)}
	if i := strings.IndexByte(user, '!'); i > 0 {
		if checkRealm(user[:i]) == nil {
			n.Decoration = strings.ToLower(user[:i])
		}
	}
	return n, nil
}

// checkUser checks utf8-username = dot-string: non-empty atoms of
// utf8-atext separated by single dots.
func checkUser(u string) error {
	if u == "" {
		return &Error{Reason: ReasonBadUser, Detail: "empty"}
	}
	for atom := range strings.SplitSeq(u, ".") {
		if atom == "" {
			return &Error{Reason: ReasonBadUser, Detail: "empty label between dots"}
		}
		for _, r := range atom {
			if !atext(r) {
				return &Error{Reason: ReasonBadUser, Detail: "character " + quoteRune(r)}
			}
		}
	}
	return nil
}

// checkRealm checks utf8-realm = 1*(label ".") label, each label
// utf8-rtext with inner hyphens.
func checkRealm(r string) error {
	if r == "" {
		return &Error{Reason: ReasonBadRealm, Detail: "empty"}
	}
	n := 0
	for label := range strings.SplitSeq(r, ".") {
		n++
		if label == "" {
			return &Error{Reason: ReasonBadRealm, Detail: "empty label"}
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return &Error{Reason: ReasonBadRealm, Detail: "label starts or ends with '-'"}
		}
		for _, c := range label {
			if c != '-' && !rtext(c) {
				return &Error{Reason: ReasonBadRealm, Detail: "character " + quoteRune(c)}
			}
		}
	}
	if n < 2 {
		return &Error{Reason: ReasonSingleLabel, Detail: r}
	}
	return nil
}

func quoteRune(r rune) string { return "'" + string(r) + "'" }

func alnum(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
}

// rtext is utf8-rtext: ALPHA / DIGIT / UTF8-xtra-char (non-ASCII).
func rtext(r rune) bool { return alnum(r) || r >= 0x80 }

// atext is utf8-atext (RFC 7542 §2.2, after RFC 5322).
func atext(r rune) bool {
	if rtext(r) {
		return true
	}
	return strings.ContainsRune("!#$%&'*+-/=?^_`{|}~", r)
}
