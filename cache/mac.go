package cache

import "strings"

// NormalizeMAC returns s as 12 lowercase hex digits, the form entries are
// keyed by. It accepts the separators switches use in MAB User-Names and
// Calling-Station-Ids (colon, dash, dot, and none) in any case and any
// grouping, and surrounding whitespace, because the format is configured per NAS and we must find the
// same client whichever one sent it. Anything that is not exactly six octets
// is rejected: net.ParseMAC would also take 8- and 20-octet addresses.
func NormalizeMAC(s string) (string, bool) {
	s = strings.TrimSpace(s)
	var out [12]byte
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'f':
		case c >= 'A' && c <= 'F':
			c += 'a' - 'A'
		case c == ':' || c == '-' || c == '.':
			// A separator must sit between digits, never lead, trail or repeat,
			// so "aa::bb..." or ":aabbccddeeff" are not taken for MACs.
			if i == 0 || i == len(s)-1 || !isHex(s[i-1]) || !isHex(s[i+1]) {
				return "", false
			}
			continue
		default:
			return "", false
		}
		if n == len(out) {
			return "", false
		}
		out[n] = c
		n++
	}
	if n != len(out) {
		return "", false
	}
	return string(out[:]), true
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}
