package peers

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/mxedge/mxedge/internal/labpki"
)

var (
	pkiOnce sync.Once
	pkiDir  string
	pki     *labpki.PKI
	pkiErr  error
)

// testPKI generates one PKI per test binary.
func testPKI(t *testing.T) *labpki.PKI {
	t.Helper()
	pkiOnce.Do(func() {
		pkiDir, pkiErr = os.MkdirTemp("", "labpki-")
		if pkiErr == nil {
			pki, pkiErr = labpki.Generate(pkiDir, labpki.Options{KeyCacheDir: keyCacheDir()})
		}
	})
	if pkiErr != nil {
		t.Fatal(pkiErr)
	}
	return pki
}

func TestMain(m *testing.M) {
	code := m.Run()
	if pkiDir != "" {
		os.RemoveAll(pkiDir)
	}
	os.Exit(code)
}

// keyCacheDir keeps the PKI's keys between runs, like Go's build cache:
// $MXEDGE_LABPKI_CACHE, else <user cache dir>/mxedge/labpki-keys. RSA-4096
// generation costs seconds on a loaded machine; certificates are still
// issued afresh every run.
func keyCacheDir() string {
	if d := os.Getenv("MXEDGE_LABPKI_CACHE"); d != "" {
		return d
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(d, "mxedge", "labpki-keys")
}
