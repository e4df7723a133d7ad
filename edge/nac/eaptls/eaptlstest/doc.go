// Package eaptlstest is an EAP-TLS peer (supplicant) written on crypto/tls,
// for tests and load tools: it answers EAP-Requests with EAP-Responses,
// fragments and ACKs like a real peer, and derives its own MSK so a test
// can compare it with the server's.
//
// It is deliberately not a _test package, so a load generator can import
// it. It trusts whatever tls.Config it is given.
package eaptlstest
