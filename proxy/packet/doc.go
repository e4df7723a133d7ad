// Package packet reads, checks and writes RADIUS packets on the wire
// (RFC 2865, 2866, 3579, 5080, 5176, 5997) for a proxy.
//
// It works on raw byte slices rather than decoded attribute maps because a
// proxy must keep attribute order, pass unknown and vendor attributes through
// untouched, and touch only what the RFCs say changes across a hop:
// Message-Authenticator, the authenticators, Proxy-State and the attributes
// encrypted with the shared secret. Doing that in place costs a few hashes
// and no per-attribute allocations.
//
// Signing follows the order the RFCs require and many implementations get
// wrong: the Message-Authenticator is computed first (over the request
// authenticator for responses, over zeros for accounting and CoA requests),
// then the Response or Request Authenticator over the packet that already
// carries it.
package packet
