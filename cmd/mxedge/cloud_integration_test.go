package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
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
	cmd := exec.Command(cloudBin, append([]string{"serve", "--dir", dir, "--mab", mab}, more...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "mxcloud ready") {
				ready <- sc.Text()
			}
		}
	}()
	select {
	case line := <-ready:
		kv := map[string]string{}
		for _, f := range strings.Fields(line)[2:] {
			k, v, _ := strings.Cut(f, "=")
			kv[k] = v
		}
		return &labCloud{API: kv["api"], RadSec: kv["radsec"], CA: kv["ca"], Code: kv["code"], Dir: dir}
	case <-time.After(30 * time.Second):
		t.Fatalf("mxcloud not ready:\n%s", stderr.String())
	}
	return nil
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
	if testing.Short() {
		t.Skip("real-process test")
	}
	peers.RequireBin(t, "radclient")
	cloud := startLabCloud(t, mabMAC+"="+mabVLAN)
	state := t.TempDir()
	cfgPath := filepath.Join(t.TempDir(), "absent.yaml") // defaults, like a fresh install

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
	fmt.Fprintln(os.Stderr) // keep the test output readable
}
