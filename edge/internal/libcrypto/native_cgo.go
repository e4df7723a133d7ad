//go:build cgo && linux

package libcrypto

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stddef.h>

// Opaque OpenSSL types: only pointers cross this file.
typedef struct evp_pkey_st EVP_PKEY;
typedef struct evp_pkey_ctx_st EVP_PKEY_CTX;
typedef struct evp_md_st EVP_MD;

static EVP_PKEY *(*p_d2i_AutoPrivateKey)(EVP_PKEY **, const unsigned char **, long);
static void (*p_EVP_PKEY_free)(EVP_PKEY *);
static EVP_PKEY_CTX *(*p_EVP_PKEY_CTX_new)(EVP_PKEY *, void *);
static void (*p_EVP_PKEY_CTX_free)(EVP_PKEY_CTX *);
static int (*p_EVP_PKEY_sign_init)(EVP_PKEY_CTX *);
static int (*p_EVP_PKEY_CTX_set_rsa_padding)(EVP_PKEY_CTX *, int);
static int (*p_EVP_PKEY_CTX_set_signature_md)(EVP_PKEY_CTX *, const EVP_MD *);
static int (*p_EVP_PKEY_CTX_set_rsa_pss_saltlen)(EVP_PKEY_CTX *, int);
static int (*p_EVP_PKEY_sign)(EVP_PKEY_CTX *, unsigned char *, size_t *, const unsigned char *, size_t);
static const EVP_MD *(*p_EVP_sha256)(void);
static const EVP_MD *(*p_EVP_sha384)(void);
static const EVP_MD *(*p_EVP_sha512)(void);
static unsigned long (*p_OpenSSL_version_num)(void);
static const char *(*p_OpenSSL_version)(int);

#define LOAD(name) if (!(*(void **)(&p_##name) = dlsym(h, #name))) return #name;

// mx_load opens libcrypto.so.3 and resolves every function used; it
// returns NULL, or what is missing.
static const char *mx_load(void) {
	void *h = dlopen("libcrypto.so.3", RTLD_NOW | RTLD_LOCAL);
	if (!h) return "libcrypto.so.3";
	LOAD(d2i_AutoPrivateKey)
	LOAD(EVP_PKEY_free)
	LOAD(EVP_PKEY_CTX_new)
	LOAD(EVP_PKEY_CTX_free)
	LOAD(EVP_PKEY_sign_init)
	LOAD(EVP_PKEY_CTX_set_rsa_padding)
	LOAD(EVP_PKEY_CTX_set_signature_md)
	LOAD(EVP_PKEY_CTX_set_rsa_pss_saltlen)
	LOAD(EVP_PKEY_sign)
	LOAD(EVP_sha256)
	LOAD(EVP_sha384)
	LOAD(EVP_sha512)
	LOAD(OpenSSL_version_num)
	LOAD(OpenSSL_version)
	return NULL;
}

static unsigned long mx_version_num(void) { return p_OpenSSL_version_num(); }
static const char *mx_version(void) { return p_OpenSSL_version(0); }

static EVP_PKEY *mx_key(const unsigned char *der, long n) {
	return p_d2i_AutoPrivateKey(NULL, &der, n);
}

static void mx_free(EVP_PKEY *k) { p_EVP_PKEY_free(k); }

// mx_sign: hash 256, 384 or 512; pss 0 for PKCS #1 v1.5.
static int mx_sign(EVP_PKEY *k, int hash, int pss, int salt,
		const unsigned char *dg, size_t dglen, unsigned char *sig, size_t *siglen) {
	const EVP_MD *md = hash == 256 ? p_EVP_sha256() : hash == 384 ? p_EVP_sha384() : p_EVP_sha512();
	EVP_PKEY_CTX *ctx = p_EVP_PKEY_CTX_new(k, NULL);
	if (!ctx) return 0;
	int ok = p_EVP_PKEY_sign_init(ctx) > 0
		&& p_EVP_PKEY_CTX_set_rsa_padding(ctx, pss ? 6 : 1) > 0 // RSA_PKCS1_PSS_PADDING, RSA_PKCS1_PADDING
		&& p_EVP_PKEY_CTX_set_signature_md(ctx, md) > 0
		&& (!pss || p_EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, salt) > 0)
		&& p_EVP_PKEY_sign(ctx, sig, siglen, dg, dglen) > 0;
	p_EVP_PKEY_CTX_free(ctx);
	return ok;
}
*/
import "C"

import (
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"unsafe"
)

var loadOnce = sync.OnceValues(func() (string, error) {
	if missing := C.mx_load(); missing != nil {
		return "", fmt.Errorf("libcrypto: cannot load %s", C.GoString(missing))
	}
	if v := C.mx_version_num(); v < 0x30000000 {
		return "", fmt.Errorf("libcrypto: version %#x is older than 3.0", uint64(v))
	}
	return C.GoString(C.mx_version()), nil
})

func load() (string, error) { return loadOnce() }

// nativeKey is a key held by libcrypto, freed when unreachable.
type nativeKey struct {
	k *C.EVP_PKEY
}

func newNativeKey(key *rsa.PrivateKey) (*nativeKey, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	defer clear(der)
	k := C.mx_key((*C.uchar)(unsafe.Pointer(&der[0])), C.long(len(der)))
	if k == nil {
		return nil, errors.New("libcrypto: key not accepted")
	}
	n := &nativeKey{k: k}
	runtime.AddCleanup(n, func(k *C.EVP_PKEY) { C.mx_free(k) }, k)
	return n, nil
}

func (n *nativeKey) sign(h crypto.Hash, pss bool, salt int, digest []byte, size int) ([]byte, error) {
	var bits C.int
	switch h {
	case crypto.SHA256:
		bits = 256
	case crypto.SHA384:
		bits = 384
	case crypto.SHA512:
		bits = 512
	default:
		return nil, errors.New("libcrypto: unsupported hash")
	}
	sig := make([]byte, size)
	sigLen := C.size_t(len(sig))
	p := C.int(0)
	if pss {
		p = 1
	}
	ok := C.mx_sign(n.k, bits, p, C.int(salt), (*C.uchar)(unsafe.Pointer(&digest[0])), C.size_t(len(digest)),
		(*C.uchar)(unsafe.Pointer(&sig[0])), &sigLen)
	runtime.KeepAlive(n)
	if ok != 1 || int(sigLen) != size {
		return nil, errors.New("libcrypto: signing failed")
	}
	return sig, nil
}
