// Package libcrypto signs with RSA keys through the system's OpenSSL 3
// libcrypto, loaded at run time, for the local EAP-TLS server.
//
// An RSA-2048 private-key operation costs about 1 ms in Go's constant-time
// implementation and about 0.3 ms in OpenSSL's, and with an RSA server
// certificate that one signature is half of a local EAP-TLS
// authentication's CPU. FreeRADIUS, the yardstick, signs through OpenSSL.
//
// The library is opened with dlopen, not linked: a build needs only a C
// compiler (cgo), the package needs no OpenSSL headers, and a machine
// without libcrypto.so.3 (or a build without cgo) signs in Go exactly as
// before. Every signature libcrypto makes is verified in Go before it is
// used, so a fault or a binding mistake costs a fallback to Go's signer,
// never a bad or key-leaking signature on the wire. MXEDGE_LIBCRYPTO=off in
// the environment turns it off.
package libcrypto
