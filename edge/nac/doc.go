// Package nac is mxedge's local authenticator: while the cloud is out of
// reach (or survivability.mode is "local") it answers EAP-TLS and MAB
// itself, from the client cache, so a laptop with a valid certificate and a
// printer on a MAB port still get on the network, on the right VLAN.
//
// It implements proxy.Handler for the router's local path and speaks RADIUS
// (RFC 2865, RFC 3579): EAP-Message reassembly and splitting, State,
// Message-Authenticator first in every reply, MS-MPPE keys (RFC 2548) and
// RFC 3580 VLAN attributes. The EAP-TLS conversation itself is eaptls's.
//
// Authorization never goes beyond what the cloud granted: a cache hit
// replays the cached VLAN, role and attributes; a miss gets the configured
// default VLAN (one for 802.1X, one for MAB) and nothing else, or
// Access-Reject when that default is not configured. An EAP-TLS
// hit needs the MAC (Calling-Station-Id) and the certificate identity
// (cache.Identity.Key: CN, else SAN UPN, email, DNS) to match the same
// entry, so a valid certificate on a spoofed MAC gets the default VLAN, not
// someone else's. Password methods are refused: the passwords are in the
// cloud.
//
// A local accept is temporary: with Config.SessionTimeout set it carries
// Session-Timeout (jittered, never longer than a cached one) and
// Termination-Action RADIUS-Request, so devices let in during an outage
// re-authenticate against the cloud after it, spread out rather than at
// once.
//
// Every decision becomes a NAC event, named as the cloud names them, in the
// cache's outbox; the cloud link uploads them after recovery.
package nac
