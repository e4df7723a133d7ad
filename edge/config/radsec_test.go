package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRadSecListenerOff(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"c.pem", "k.pem", "ca.pem"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	files := "radsec: {cert: " + dir + "/c.pem, key: " + dir + "/k.pem, client_ca: " + dir + "/ca.pem}\n"
	tests := []struct {
		name string
		yaml string
		want string // substring; "" means on
	}{
		{"listen empty", "radsec: {listen: []}\n", "radsec.listen is empty"},
		{"files present", files, ""},
		{"section set, files missing: start fails loudly", "radsec: {listen: [\":2083\"], cert: /nonexistent/c.pem}\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("t.yaml", []byte(tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			got := c.RadSecListenerOff()
			if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
				t.Fatalf("RadSecListenerOff() = %q, want %q", got, tt.want)
			}
		})
	}
	// Untouched defaults: off exactly when a default file is missing.
	c := Default()
	got := c.RadSecListenerOff()
	_, err := os.Stat(c.RadSec.Cert)
	if (err != nil) != (got != "") {
		t.Fatalf("defaults: stat %v, off %q", err, got)
	}
}
