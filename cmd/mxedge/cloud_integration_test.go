package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mxedge/mxedge/cmd/internal/peers"
)

// labCloud is a running mxcloud serve.
type labCloud struct {
	API, RadSec, CA, Code string
	Dir                   string // --dir, for mxcloud stats
}

func startLabCloud(t *testing.T, mab string, more ...string) *labCloud {
	t.Helper()
	dir := t.TempDir()
	c := startCloudProc(t, append([]string{"--dir", dir, "--mab", mab}, more...)...)
	lab := c.lab
	lab.Dir = dir
	return &lab
}

// freshConfig is a config file with every key at its default, as the
// package installs it: register reads --config, and a missing file is an
// error.
func freshConfig(t testing.TB) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte("# every key at its default\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func runEdgeCmd(t *testing.T, args ...string) (string, int) {
	t.Helper()
	out, err := exec.Command(edgeBin, args...).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(out), 0
}

// TestRegisterAndProxyThroughLabCloud registers the real binary with the lab
// cloud using a one-time code, then runs it with nothing but the
// registration to find the cloud's RadSec NAC, and authenticates a MAB
// client through it.
func TestRegisterAndProxyThroughLabCloud(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("real-process test")
	}
	peers.RequireBin(t, "radclient")
	cloud := startLabCloud(t, mabMAC+"="+mabVLAN)
	state := t.TempDir()
	cfgPath := freshConfig(t) // defaults, like a fresh install

	out, code := runEdgeCmd(t, "register", "--config", cfgPath, "--registration-code", cloud.Code,
		"--cloud", cloud.API, "--cloud-ca", cloud.CA, "--state-dir", state)
	if code != 0 || !regexp.MustCompile(`registration finished successfully\. \(regfile at \S+\)`).MatchString(out) {
		t.Fatalf("register: exit %d\n%s", code, out)
	}
	// Twice with the same code is safe.
	if out, code := runEdgeCmd(t, "register", "--config", cfgPath, "--registration-code", cloud.Code,
		"--cloud", cloud.API, "--cloud-ca", cloud.CA, "--state-dir", state); code != 0 {
		t.Fatalf("second register with the same code: exit %d\n%s", code, out)
	}
	// A wrong code fails clearly.
	out, code = runEdgeCmd(t, "register", "--config", cfgPath, "--registration-code", "not-a-code",
		"--cloud", cloud.API, "--cloud-ca", cloud.CA, "--state-dir", t.TempDir())
	if code == 0 || !strings.Contains(out, "mxedge register:") {
		t.Fatalf("wrong code: exit %d\n%s", code, out)
	}
	for _, f := range []string{"edge.key"} {
		fi, err := os.Stat(filepath.Join(state, f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v mode %v", f, err, fi.Mode())
		}
	}

	// No cloud.radsec in the config: the registration supplies servers,
	// client certificate and CA.
	e := startEdge(t, edgeConfig{Secret: labSecret, Upstreams: nil, StateDir: state, Mode: "cloud", NoCloudSection: true})
	res, err := peers.Radclient(ctxFor(t, 10*time.Second), e.Auth, labSecret, "auth", mabAttrs(mabMAC))
	if err != nil {
		t.Fatal(err)
	}
	if res.Code != "Access-Accept" || res.Attr("Tunnel-Private-Group-Id") != mabVLAN {
		t.Fatalf("MAB through the registered edge:\n%s", res.Output)
	}
}
