package realm

import "strings"

// SSID returns the SSID in a Called-Station-Id of the form "MAC:SSID"
// (RFC 3580 §3.20). Vendors vary the MAC's notation (dashes, colons,
// dots, none; any case) and the separator before the SSID (':' in the
// RFC, ';' or ',' elsewhere); all are accepted. ok is false when the
// value does not start with a MAC followed by a separator and an SSID.
func SSID(calledStationID string) (ssid string, ok bool) {
	s := calledStationID
	digits, i := 0, 0
	for ; i < len(s) && digits < 12; i++ {
		c := s[i]
		switch {
		case hex(c):
			digits++
		case c == '-' || c == ':' || c == '.':
			if i == 0 || !hex(s[i-1]) {
				return "", false
			}
		default:
			return "", false
		}
	}
	if digits < 12 || i >= len(s) {
		return "", false
	}
	switch s[i] {
	case ':', ';', ',', '-', '_':
	default:
		return "", false
	}
	ssid = s[i+1:]
	if ssid == "" || strings.ContainsFunc(ssid, func(r rune) bool { return r < ' ' }) {
		return "", false
	}
	return ssid, true
}

func hex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }
