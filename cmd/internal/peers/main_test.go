package peers

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/mxedge/mxedge/internal/labpki"
)

// sharedPKI is one PKI per test binary; its keys outlive it in
// keyCacheDir.
var sharedPKI = labpki.Shared{Options: labpki.Options{KeyCacheDir: keyCacheDir()}}

func testPKI(t *testing.T) *labpki.PKI {
	t.Helper()
	return sharedPKI.Get(t)
}

func TestMain(m *testing.M) {
	code := m.Run()
	sharedPKI.Remove()
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
