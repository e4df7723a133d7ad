// Package udpclient is a plain RADIUS (UDP) client toward a pool of
// servers that the edge does not control: the national roaming
// operator's servers of a federation such as eduroam.
//
// Each server is a proxy.Exchanger with its own secret, sockets and
// identifiers (an identifier is never reused while a request holds it,
// RFC 5080 §2.2.1), retransmitting within a per-server timeout and
// checking every reply against its request, with Message-Authenticator
// required per server (FreeRADIUS 3.2.1 adds it only to EAP replies).
// The Pool picks a server per conversation (round robin or failover),
// keeps every round of one EAP conversation on the server that issued its
// State, fails a first round over to the next server, and probes each
// server with Status-Server (RFC 5997) to know which are up.
package udpclient
