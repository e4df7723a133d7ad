package nac

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// Every reason the package drops with is in dropReasons, so that
// mxedge_nac_dropped_total shows it at zero from start.
func TestDropReasonsListed(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	call := regexp.MustCompile(`\.drop\("([a-z_]+)"`)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range call.FindAllSubmatch(b, -1) {
			if !slices.Contains(dropReasons, string(m[1])) {
				t.Errorf("%s drops with %q, which dropReasons lacks", f, m[1])
			}
		}
	}
}
