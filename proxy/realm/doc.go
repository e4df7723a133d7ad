// Package realm reads the realm out of a RADIUS User-Name and decides
// whether it may leave the site: Network Access Identifiers per RFC 7542
// (with their decoration, §3.3.1), realm patterns (exact and "*.suffix"),
// and the SSID a wireless NAS puts into Called-Station-Id (RFC 3580
// §3.20).
//
// It holds no routing policy of its own: the edge builds its federation
// routes from these pieces.
package realm
