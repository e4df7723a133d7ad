package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mxedge/mxedge/cmd/internal/peers"
	"github.com/mxedge/mxedge/internal/syncbuf"
)

// TestDebInstallRegisterServe is the operator's path on the built package:
// the .deb installed with dpkg into a throwaway root (its maintainer
// scripts create the mxedge user and /var/lib/mxedge there), the service
// started as the unit starts it (User=mxedge, UMask=0027, ExecStart) while
// still unregistered, then `mxedge register` run as root against the lab
// cloud. Without a restart, the running daemon registers, answers a MAB
// request through the cloud, and `mxedge status` says it is registered.
//
// The host is not touched: the test runs the daemon and the CLI in a
// private mount namespace it makes, where /etc/passwd and /etc/group are
// the host's plus the root's mxedge entries and /var/lib/mxedge is the
// root's (on a tmpfs /var/lib). The one difference from the unit: the
// config is read from the root's etc/mxedge/config.yaml, since /etc/mxedge
// has no mount point on the host.
func TestDebInstallRegisterServe(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("real-process test")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: dpkg's scripts chown inside the root, and the daemon runs as the package's user")
	}
	for _, tool := range []string{"dpkg", "systemd-sysusers", "systemd-tmpfiles", "unshare", "nsenter", "setpriv", "make"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	peers.RequireBin(t, "radclient")

	// The package, as `make deb` builds it, around the binary under test.
	work := tempDirFor(t)
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dist := filepath.Join(work, "dist")
	mustRun(t, repo, "make", "-s", "-f", "packaging/deb.mk", "deb-pkg-"+runtime.GOARCH,
		"VERSION=v1.2.3-4-gdeadbee", "MXEDGE_BIN="+edgeBin, "DIST_DIR="+dist, "BIN_DIR="+filepath.Join(work, "bin"))
	debs, _ := filepath.Glob(filepath.Join(dist, "*.deb"))
	if len(debs) != 1 {
		t.Fatalf("make deb-pkg produced %v", debs)
	}

	// apt install ./mxedge_*.deb, into root.
	root := filepath.Join(work, "root")
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers", "etc"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"var/lib/dpkg/status", "var/lib/dpkg/available"} {
		if err := os.WriteFile(filepath.Join(root, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mustRun(t, "", "dpkg", "--root="+root, "--force-not-root", "--force-script-chrootless", "--force-depends",
		"--log=/dev/null", "--install", debs[0])
	uid, gid := passwdIDs(t, filepath.Join(root, "etc/passwd"), "mxedge")

	// The operator's edit: the switch as a client, loopback port 0 (the
	// test shares the host; the ready line names the ports bound), no
	// RadSec listener (no device certificates).
	cfgPath := filepath.Join(root, "etc/mxedge/config.yaml")
	b, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(b)
	for _, r := range []struct{ old, new string }{
		{`auth_listen: [":1812"]`, `auth_listen: ["127.0.0.1:0"]`},
		{`acct_listen: [":1813"]`, `acct_listen: ["127.0.0.1:0"]`},
		{`listen: 127.0.0.1:9812`, `listen: 127.0.0.1:0`},
		{`listen: [":2083"]`, `listen: []`},
	} {
		if !strings.Contains(cfg, r.old) {
			t.Fatalf("packaged config.yaml has no %q", r.old)
		}
		cfg = strings.Replace(cfg, r.old, r.new, 1)
	}
	clients := regexp.MustCompile(`(?m)^  clients:.*\n`)
	cfg = clients.ReplaceAllString(cfg, fmt.Sprintf("  clients:\n    - name: lab-switch\n      address: 127.0.0.1\n      secret: %q\n", labSecret))
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o640); err != nil { // mode and owner stay the package's
		t.Fatal(err)
	}

	// The namespace: passwd and group with the package's user, and the
	// root's state directory at /var/lib/mxedge.
	for _, f := range []string{"passwd", "group"} {
		host, err := os.ReadFile("/etc/" + f)
		if err != nil {
			t.Fatal(err)
		}
		pkg, err := os.ReadFile(filepath.Join(root, "etc", f))
		if err != nil {
			t.Fatal(err)
		}
		var merged bytes.Buffer
		merged.Write(host)
		for line := range strings.Lines(string(pkg)) {
			if strings.HasPrefix(line, "mxedge:") {
				merged.WriteString(line)
			}
		}
		if err := os.WriteFile(filepath.Join(work, f), merged.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	holder := exec.Command("unshare", "--mount", "--propagation", "private", "--", "sh", "-c", fmt.Sprintf(
		`set -e; mount -t tmpfs -o mode=0755 tmpfs /var/lib; mkdir /var/lib/mxedge
mount --bind %[1]s/var/lib/mxedge /var/lib/mxedge
mount --bind %[2]s/passwd /etc/passwd; mount --bind %[2]s/group /etc/group
echo ready; exec sleep 300`, root, work))
	out, err := holder.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	holder.Stderr = os.Stderr
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { holder.Process.Kill(); holder.Wait() })
	if line, _ := bufio.NewReader(out).ReadString('\n'); line != "ready\n" {
		t.Fatalf("namespace not made: %q", line)
	}
	ns := []string{"nsenter", "--target", strconv.Itoa(holder.Process.Pid), "--mount", "--"}
	bin := filepath.Join(root, "usr/bin/mxedge")
	cli := func(args ...string) (string, error) {
		c := exec.Command(ns[0], append(append(ns[1:], bin), args...)...)
		b, err := c.CombinedOutput()
		return string(b), err
	}

	// The unit's start: User=mxedge, Group=mxedge, UMask=0027, ExecStart.
	// The package started it on install, before any registration.
	daemon := exec.Command(ns[0], append(ns[1:], "setpriv", "--reuid="+strconv.Itoa(uid), "--regid="+strconv.Itoa(gid),
		"--init-groups", "--", "sh", "-c", `umask 0027; exec "$0" run --config "$1"`, bin, cfgPath)...)
	logs := &syncbuf.Buffer{}
	daemon.Stdout, daemon.Stderr = logs, logs
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { daemon.Wait(); close(exited) }()
	t.Cleanup(func() {
		daemon.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			daemon.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s", logs.String())
		}
	})
	addrs, err := readyAddrs(waitLine(t, exited, logs, "mxedge ready"))
	if err != nil {
		t.Fatal(err)
	}
	if addrs.RadSec != "" {
		t.Errorf("RadSec listener on %s, configured off", addrs.RadSec)
	}
	if l := logs.String(); strings.Contains(l, "level=ERROR") {
		t.Errorf("an unregistered fresh install logs errors:\n%s", l)
	}
	st, err := cli("status", "--config", cfgPath)
	if err != nil || !strings.Contains(st, "cloud:") || !strings.Contains(st, "not registered") || !strings.Contains(st, "waiting for:") {
		t.Fatalf("status before registration (%v):\n%s", err, st)
	}

	t.Logf("status before registration:\n%s", st)

	// mxedge register, as root, as the README says.
	cloud := startLabCloud(t, mabMAC+"="+mabVLAN)
	reg, err := cli("register", "--config", cfgPath, "--registration-code", cloud.Code, "--cloud", cloud.API, "--cloud-ca", cloud.CA)
	if err != nil || !strings.Contains(reg, "registration finished successfully") || !strings.Contains(reg, "owned by mxedge") {
		t.Fatalf("register (%v):\n%s", err, reg)
	}
	t.Logf("register:\n%s", reg)
	filepath.WalkDir(filepath.Join(root, "var/lib/mxedge"), func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if fi, err := d.Info(); err == nil {
			if s := fi.Sys().(*syscall.Stat_t); int(s.Uid) != uid {
				t.Errorf("%s owned by uid %d, not mxedge (%d)", p, s.Uid, uid)
			}
		}
		return nil
	})

	// No restart: the running daemon registered and serves through the cloud.
	var res peers.Result
	deadline := time.Now().Add(20 * time.Second)
	for {
		res, err = peers.Radclient(ctxFor(t, 10*time.Second), addrs.Auth, labSecret, "auth", mabAttrs(mabMAC))
		if err == nil && res.Code == "Access-Accept" || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil || res.Code != "Access-Accept" || res.Attr("Tunnel-Private-Group-Id") != mabVLAN {
		t.Fatalf("MAB through the registered edge (%v):\n%s", err, res.Output)
	}
	st, err = cli("status", "--config", cfgPath)
	if err != nil || !regexp.MustCompile(`(?m)^cloud:\s+edge \S+ at https://`).MatchString(st) || strings.Contains(st, "waiting for:\tregistration") {
		t.Fatalf("status after registration (%v):\n%s", err, st)
	}
	if !strings.Contains(logs.String(), "registration picked up") {
		t.Errorf("no pick-up in the daemon's log:\n%s", logs.String())
	}
	select {
	case <-exited:
		t.Fatal("the daemon exited")
	default:
	}
	t.Logf("status after registration:\n%s", st)
}

func tempDirFor(t *testing.T) string {
	t.Helper()
	// The package's user must reach the root: t.TempDir is 0700 per level.
	dir := t.TempDir()
	for d := dir; d != filepath.Dir(os.TempDir()) && d != "/"; d = filepath.Dir(d) {
		if d == os.TempDir() {
			break
		}
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func mustRun(t *testing.T, dir, name string, args ...string) {
	t.Helper()
	c := exec.Command(name, args...)
	c.Dir = dir
	if b, err := c.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, b)
	}
}

func passwdIDs(t *testing.T, path, name string) (uid, gid int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		f := strings.Split(strings.TrimSpace(line), ":")
		if len(f) == 7 && f[0] == name {
			uid, _ = strconv.Atoi(f[2])
			gid, _ = strconv.Atoi(f[3])
			return uid, gid
		}
	}
	t.Fatalf("no %s in %s", name, path)
	return 0, 0
}

// waitLine waits for the first whole log line containing line and
// returns it.
func waitLine(t *testing.T, exited chan struct{}, logs *syncbuf.Buffer, line string) string {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		for l := range strings.Lines(logs.String()) {
			if strings.Contains(l, line) && strings.HasSuffix(l, "\n") { // whole, not half written
				return strings.TrimSuffix(l, "\n")
			}
		}
		select {
		case <-exited:
			t.Fatalf("the daemon exited before %q:\n%s", line, logs.String())
		case <-deadline:
			t.Fatalf("no %q after 20s:\n%s", line, logs.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
