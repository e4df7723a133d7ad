package labpki

import (
	"os"
	"sync"
)

// Shared is one throwaway PKI for a whole test binary: generated the first
// time a test asks for it (most runs of a package need it in a few tests,
// and generating costs seconds), in a temporary directory that Remove
// deletes from TestMain. Its zero value generates with Options{}.
type Shared struct {
	// Options are Generate's; set them before the first Get.
	Options Options

	once sync.Once
	dir  string
	pki  *PKI
	err  error
}

// TB is the part of testing.TB that Get needs, so that this package,
// which the lab tools link, need not import testing.
type TB interface {
	Helper()
	Fatal(args ...any)
}

// Get returns the PKI, generating it on the first call; it fails t if
// generating failed, then or on an earlier call.
func (s *Shared) Get(t TB) *PKI {
	t.Helper()
	s.once.Do(func() {
		s.dir, s.err = os.MkdirTemp("", "labpki-")
		if s.err == nil {
			s.pki, s.err = Generate(s.dir, s.Options)
		}
	})
	if s.err != nil {
		t.Fatal(s.err)
	}
	return s.pki
}

// Remove deletes the PKI's directory, if Get made one. Call it from
// TestMain after m.Run.
func (s *Shared) Remove() error {
	if s.dir == "" {
		return nil
	}
	return os.RemoveAll(s.dir)
}
