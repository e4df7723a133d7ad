// Package radsec carries RADIUS over TLS (RadSec, RFC 6614 and
// draft-ietf-radext-radiusdtls-bis) in both directions: Client is the pool
// of upstream connections toward the cloud NAC, Server is the listener that
// managed devices and the cloud connect to.
//
// A TLS stream has no datagram boundaries, so ReadPacket frames packets by
// the RADIUS Length field and anything malformed closes the connection
// (bis §3.12) rather than being skipped: after one bad frame the stream
// position can no longer be trusted.
//
// The pool exists because one TLS connection holds at most 256 requests in
// flight (one octet of identifier, ID 0 kept for Status-Server), upstreams
// close idle connections, and the edge must fail over between cloud servers
// without losing requests. Requests caught on a connection that goes away
// are moved to another one with a new identifier and the same deadline
// (bis §3.9.2, §4.2); there is no retransmission over TLS.
//
// Inside TLS the RADIUS shared secret is the literal "radsec" (bis §3.1).
package radsec
