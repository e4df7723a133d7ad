package libcrypto

import (
	"crypto"
	"crypto/rsa"
	"errors"
	"io"
	"os"
	"sync/atomic"
)

var errDisabled = errors.New("libcrypto: turned off by MXEDGE_LIBCRYPTO=off")

// Signer signs with an RSA key through libcrypto, falling back to Go's
// implementation for what it does not take (a hash other than SHA-256,
// SHA-384 or SHA-512, unhashed PKCS #1 v1.5) or when a signature fails its
// check.
type Signer struct {
	key    *rsa.PrivateKey
	native *nativeKey
	failed atomic.Bool
}

var _ crypto.Signer = (*Signer)(nil)

// Load opens libcrypto once; later calls return the first result. It
// reports the library's version, or why it is not used.
func Load() (version string, err error) {
	if os.Getenv("MXEDGE_LIBCRYPTO") == "off" {
		return "", errDisabled
	}
	return load()
}

// NewSigner returns a Signer for key, or an error saying why libcrypto
// cannot take it (the caller then keeps key as it is).
func NewSigner(key *rsa.PrivateKey) (*Signer, error) {
	if _, err := Load(); err != nil {
		return nil, err
	}
	n, err := newNativeKey(key)
	if err != nil {
		return nil, err
	}
	return &Signer{key: key, native: n}, nil
}

// Public returns the public key.
func (s *Signer) Public() crypto.PublicKey { return &s.key.PublicKey }

// Sign signs digest as rsa.PrivateKey.Sign does: PSS when opts is an
// *rsa.PSSOptions, else PKCS #1 v1.5 with opts.HashFunc().
func (s *Signer) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	h := opts.HashFunc()
	if s.failed.Load() || !supported(h) || len(digest) != h.Size() {
		return s.key.Sign(rand, digest, opts)
	}
	pss, _ := opts.(*rsa.PSSOptions)
	salt := 0
	if pss != nil {
		switch {
		case pss.SaltLength == rsa.PSSSaltLengthEqualsHash:
			salt = saltDigest
		case pss.SaltLength == rsa.PSSSaltLengthAuto:
			salt = saltMax
		case pss.SaltLength > 0:
			salt = pss.SaltLength
		default:
			return s.key.Sign(rand, digest, opts)
		}
	}
	sig, err := s.native.sign(h, pss != nil, salt, digest, s.key.Size())
	if err == nil {
		if pss != nil {
			// Auto on the verifying side accepts any salt length.
			err = rsa.VerifyPSS(&s.key.PublicKey, h, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto})
		} else {
			err = rsa.VerifyPKCS1v15(&s.key.PublicKey, h, digest, sig)
		}
	}
	if err != nil {
		// Not worth a second try: sign in Go from now on.
		s.failed.Store(true)
		return s.key.Sign(rand, digest, opts)
	}
	return sig, nil
}

// Native reports whether the Signer still signs through libcrypto.
func (s *Signer) Native() bool { return !s.failed.Load() }

func supported(h crypto.Hash) bool {
	return h == crypto.SHA256 || h == crypto.SHA384 || h == crypto.SHA512
}

// OpenSSL's salt length codes (include/openssl/rsa.h).
const (
	saltDigest = -1 // RSA_PSS_SALTLEN_DIGEST
	saltMax    = -3 // RSA_PSS_SALTLEN_MAX
)
