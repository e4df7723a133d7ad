// Package packet reads, checks and writes RADIUS packets on the wire
// (RFC 2865, 2866, 3579, 5080, 5176, 5997) for a proxy.
//
// It works on raw byte slices, and the forwarding path on top of it
// (proxy.Forwarder) touches only what the RFCs say changes across a hop:
// Message-Authenticator, the authenticators, Proxy-State and the attributes
// encrypted with the shared secret. Keeping attribute order and passing
// unknown and vendor attributes through is not the reason: layeh.com/radius,
// which the tests use as the independent reference, does both too. The
// reasons are measured and named:
//
//   - Cost per request. The same hop (check the NAS's request, re-encrypt
//     User-Password, add Proxy-State, sign; check the reply, strip our
//     Proxy-State, re-sign for the NAS) costs about half the CPU and a sixth
//     of the allocations it costs on layeh: BenchmarkHopPacket against
//     BenchmarkHopLayeh in package proxy, figures in docs/benchmarks.md.
//   - Message-Authenticator. The layeh version the module pins has none
//     (it predates BlastRADIUS); each user would hand-write it, and its
//     order against the Response Authenticator is what implementations get
//     wrong (below).
//
// Attribute names, dictionaries and typed values, where the code needs them
// (edge/nac's attribute tables, tests), are layeh's or typed tables, not
// a second dictionary here.
//
// Signing follows the order the RFCs require and many implementations get
// wrong: the Message-Authenticator is computed first (over the request
// authenticator for responses, over zeros for accounting and CoA requests),
// then the Response or Request Authenticator over the packet that already
// carries it.
package packet
