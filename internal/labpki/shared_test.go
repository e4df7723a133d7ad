package labpki

import (
	"os"
	"path/filepath"
	"testing"
)

// fatalTB records Fatal instead of ending a test.
type fatalTB struct{ fatal []any }

func (*fatalTB) Helper()             {}
func (f *fatalTB) Fatal(args ...any) { f.fatal = args }

// Shared generates once, hands out the same PKI, and Remove deletes it.
func TestShared(t *testing.T) {
	var s Shared
	s.Options.KeyCacheDir = t.TempDir()
	if err := s.Remove(); err != nil {
		t.Fatalf("Remove before Get: %v", err)
	}
	p := s.Get(t)
	if again := s.Get(t); again != p {
		t.Fatal("second Get generated another PKI")
	}
	if _, err := os.Stat(p.RootFile); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p.Dir); !os.IsNotExist(err) {
		t.Fatalf("%s after Remove: %v", p.Dir, err)
	}
}

// A failed generation fails every Get, not only the first.
func TestSharedFailure(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s := Shared{Options: Options{KeyCacheDir: filepath.Join(file, "keys")}} // below a file: MkdirAll fails
	defer s.Remove()
	for i := range 2 {
		var f fatalTB
		if p := s.Get(&f); p != nil || f.fatal == nil {
			t.Fatalf("Get %d: %v, fatal %v; want nil and a failure", i, p, f.fatal)
		}
	}
}
