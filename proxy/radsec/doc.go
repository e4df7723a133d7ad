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
// Replies are a different matter: a reply that comes after its request
// timed out, matches no request, or fails verification is dropped and
// counted, and the connection stays up. Inside mutual TLS none of those is
// an attack, and closing would fail every other request in flight. The
// identifier of a request that timed out is quarantined for a few timeouts
// so that its late reply cannot meet the next request on it.
//
// Inside TLS the RADIUS shared secret is the literal "radsec" (bis §3.1).
package radsec
