package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mxedge/mxedge/edge"
)

// runCLI runs the command line in process.
func runCLI(args ...string) (stdout, stderr string, code int) {
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return o.String(), e.String(), code
}

// TestHelpExitsZero: `mxedge CMD --help` prints CMD's usage on stdout
// and exits 0, for every command.
func TestHelpExitsZero(t *testing.T) {
	t.Parallel()
	cmds := slices.Sorted(func(yield func(string) bool) {
		for c := range synopses {
			if !yield(c) {
				return
			}
		}
	})
	for _, cmd := range cmds {
		for _, h := range []string{"--help", "-h"} {
			args := append(strings.Fields(cmd), h)
			out, errOut, code := runCLI(args...)
			if code != 0 || !strings.Contains(out, "usage: "+synopses[cmd]) {
				t.Errorf("mxedge %s %s: exit %d, stdout %q, stderr %q; want 0 and the usage", cmd, h, code, out, errOut)
			}
		}
	}
}

// TestVersion: version, commit, Go version and the libcrypto signer.
func TestVersion(t *testing.T) {
	t.Parallel()
	out, _, code := runCLI("version")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	want := []string{"mxedge " + version, "commit: ", "go: go1.", "libcrypto signer: "}
	if code != 0 || len(lines) != len(want) {
		t.Fatalf("exit %d, output:\n%s", code, out)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d = %q, want %q…", i, lines[i], w)
		}
	}
}

// TestMissingConfig: a --config FILE that does not exist is an error for
// every command that reads one, never a silent fall back to defaults.
func TestMissingConfig(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "nope.yaml")
	for _, args := range [][]string{
		{"run"}, {"check-config"}, {"status"}, {"cache", "ls"}, {"console-token"},
		{"register", "--registration-code", "X", "--cloud", "https://127.0.0.1:1"},
	} {
		_, errOut, code := runCLI(append(args, "--config", missing)...)
		if code != 1 || !strings.Contains(errOut, missing+": no such file or directory") {
			t.Errorf("%v: exit %d, stderr %q; want 1 and FILE: no such file or directory", args, code, errOut)
		}
	}
}

// fakeDaemon answers status on dir's control socket like a running daemon.
func fakeDaemon(t *testing.T, dir string) {
	t.Helper()
	ln, err := net.Listen("unix", edge.ControlPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			bufio.NewReader(c).ReadString('\n')
			json.NewEncoder(c).Encode(edge.ControlResponse{Status: &edge.StatusReport{
				PID: 4242, Version: "test", Mode: "cloud", Upstreams: []edge.UpstreamStatus{},
				Waiting: []string{"registration: run mxedge register"},
			}})
			c.Close()
		}
	}()
}

// TestStatusWithBrokenConfig: status reaches the daemon through the state
// directory even when the file on disk has become invalid, or with
// --state-dir and no file at all.
func TestStatusWithBrokenConfig(t *testing.T) {
	t.Parallel()
	state, err := os.MkdirTemp("", "mxst") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(state) })
	fakeDaemon(t, state)
	broken := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(broken, []byte("state_dir: "+state+"\nlog: {level: loud}\nradius: {bogus: 1}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"status", "--config", broken},
		{"status", "--state-dir", state},
		{"status", "--state-dir", state, "--config", filepath.Join(state, "absent.yaml")}, // --state-dir needs no file
	} {
		out, errOut, code := runCLI(args...)
		if code != 0 || !strings.Contains(out, "pid 4242") || !strings.Contains(out, "waiting for:  registration") {
			t.Errorf("%v: exit %d\nstdout:\n%s\nstderr:\n%s", args, code, out, errOut)
		}
		if args[1] == "--config" && !strings.Contains(errOut, broken+" is invalid (2 problems") {
			t.Errorf("%v: stderr %q does not say the file is invalid", args, errOut)
		}
	}
}

// TestCheckConfigFiles: check-config reports what run refuses, as FILE:
// KEY: reason, and run refuses it with the same line.
func TestCheckConfigFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	yml := "state_dir: " + dir + "\nsurvivability:\n  mode: local\n  org_ca: " + dir + "/org-ca.pem\n  eap_cert: " + dir +
		"/eap.pem\n  eap_key: " + dir + "/eap.key\n"
	if err := os.WriteFile(cfg, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	want := cfg + ": survivability.org_ca: " + dir + "/org-ca.pem: no such file or directory"
	for _, cmd := range []string{"check-config", "run"} {
		out, errOut, code := runCLI(cmd, "--config", cfg)
		if code != 1 || !strings.Contains(errOut, want) || strings.Contains(out, "ok") {
			t.Errorf("%s: exit %d\nstdout %q\nstderr %q\nwant exit 1 and %q", cmd, code, out, errOut, want)
		}
	}
}
