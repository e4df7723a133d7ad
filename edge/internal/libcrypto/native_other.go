//go:build !(cgo && linux)

package libcrypto

import (
	"crypto"
	"crypto/rsa"
	"errors"
)

var errNoCgo = errors.New("libcrypto: this build has no cgo; signing in Go")

func load() (string, error) { return "", errNoCgo }

type nativeKey struct{}

func newNativeKey(*rsa.PrivateKey) (*nativeKey, error) { return nil, errNoCgo }

func (*nativeKey) sign(crypto.Hash, bool, int, []byte, int) ([]byte, error) { return nil, errNoCgo }
