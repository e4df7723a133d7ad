// Package labpki mints every certificate the module's tests and lab tools
// use. Issue signs one in memory (for unit tests, which want a CA and a leaf
// in microseconds and nothing on disk); Generate writes a whole throwaway PKI
// for the lab cloud, integration tests and benchmarks: a RadSec CA with server and client certificates, an
// organisation CA with an intermediate issuing EAP-TLS client certificates
// (valid, machine, expired, revoked with a CRL, untrusted, long chain), and
// EAP server certificates.
//
// Everything is PEM on disk because the real peers (FreeRADIUS, radsecproxy,
// eapol_test) read files; the parsed objects are returned too so Go code
// under test need not re-read them. Keys are ECDSA P-256 unless a peer needs
// RSA; RSA-4096 key generation is slow, so keys can be kept in a cache
// directory and reused across runs while the certificates are re-issued
// each time with fresh validity.
package labpki
