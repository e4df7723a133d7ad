// Package eap encodes and decodes EAP packets (RFC 3748 §4).
//
// It is the pure wire layer under the local authenticator: no RADIUS
// framing (EAP-Message splitting, State, Message-Authenticator) and no
// method state. Parse is strict on purpose: the bytes come from a NAS we
// only half trust while the WAN is down, so a Length that disagrees with
// the packet is an error rather than something to repair.
package eap
