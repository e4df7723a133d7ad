// Package udp serves plain RADIUS from third-party devices: Access-Request
// on the auth port (1812) and Accounting-Request on the accounting port
// (1813), Status-Server on both.
//
// Everything that plain RADIUS over UDP needs and RadSec does not lives
// here: finding the client by source address, the BlastRADIUS checks on
// Message-Authenticator before any crypto (CVE-2024-3596), verifying the
// request with the client's shared secret, the duplicate cache that turns
// NAS retransmissions into either silence or the cached answer
// (RFC 5080 §2.2.2), and answering Status-Server locally (RFC 5997). What
// survives is handed to a proxy.Handler in its own goroutine, so one slow
// upstream exchange never holds up the socket.
//
// The server does not own sockets: the caller opens them (or takes them
// from systemd) and passes each to Serve, so a reload can swap the client
// table without closing a socket.
package udp
