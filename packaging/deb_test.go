package packaging

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// The version the test packages with: a git-describe string, so the mapping
// to a Debian version is exercised too.
const (
	testVersion    = "v1.2.3-4-gdeadbee"
	testDebVersion = "1.2.3+4.gdeadbee"
	maintainer     = "mxedge maintainers <mxedge@example.net>"
)

// needTool returns the path of a Debian tool. Locally a missing tool skips
// the test; in CI (CI=true) it fails, because .ci/run must install it.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not installed; .ci/run must install it", name)
		}
		t.Skipf("%s not installed", name)
	}
	return p
}

// run runs a command and returns its stdout; on failure it fails the test
// with stderr.
func run(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	out, err := runErr(dir, env, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return out
}

func runErr(dir string, env []string, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("%w\nstdout:\n%s\nstderr:\n%s", err, stdout.Bytes(), stderr.Bytes())
	}
	return stdout.String(), err
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// placeholderBinary builds a tiny linux/arch program standing in for
// mxedge, with the same flags as deb.mk (cgo for the host's arch, static
// for the others), so the packaging tests do not depend
// on the daemon compiling. `make deb` packages the real one.
func placeholderBinary(t *testing.T, dir, arch string) string {
	t.Helper()
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"go.mod":  "module placeholder\n\ngo 1.26\n",
		"main.go": "package main\n\nimport \"fmt\"\n\nvar version = \"unset\"\n\nfunc main() { fmt.Println(\"mxedge\", version) }\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(src, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, "linux_"+arch, "mxedge")
	if arch == runtime.GOARCH {
		// The host's package is a cgo build, dynamic and hardened.
		cgo := "package main\n\n// #include <stdlib.h>\nimport \"C\"\n\nvar _ = C.free\n"
		if err := os.WriteFile(filepath.Join(src, "cgo.go"), []byte(cgo), 0o644); err != nil {
			t.Fatal(err)
		}
		run(t, src, []string{"GOOS=linux", "GOARCH=" + arch, "CGO_ENABLED=1", "GOWORK=off", "GOFLAGS=-mod=mod"},
			"go", "build", "-trimpath", "-buildmode=pie",
			"-ldflags", "-s -w -X main.version="+testVersion+" -extldflags '-Wl,-z,relro -Wl,-z,now'", "-o", out, ".")
		return out
	}
	run(t, src, []string{"GOOS=linux", "GOARCH=" + arch, "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=-mod=mod"},
		"go", "build", "-trimpath", "-ldflags", "-s -w -X main.version="+testVersion, "-o", out, ".")
	return out
}

// buildDebs runs deb.mk's deb-pkg-ARCH rule (the packaging half of
// `make deb`) for each arch and returns arch → .deb path.
func buildDebs(t *testing.T, arches ...string) map[string]string {
	t.Helper()
	needTool(t, "make")
	work := t.TempDir()
	dist := filepath.Join(work, "dist")
	debs := make(map[string]string)
	for _, arch := range arches {
		bin := placeholderBinary(t, work, arch)
		run(t, repoRoot(t), nil, "make", "-s", "-f", "packaging/deb.mk", "deb-pkg-"+arch,
			"VERSION="+testVersion, "MXEDGE_BIN="+bin, "DIST_DIR="+dist, "BIN_DIR="+filepath.Join(work, "bin"))
		deb := filepath.Join(dist, "mxedge_"+testDebVersion+"_"+arch+".deb")
		if _, err := os.Stat(deb); err != nil {
			t.Fatalf("make did not produce %s: %v", deb, err)
		}
		debs[arch] = deb
	}
	return debs
}

func TestDeb(t *testing.T) {
	needTool(t, "dpkg-deb")
	debs := buildDebs(t, "amd64", "arm64")
	for _, arch := range []string{"amd64", "arm64"} {
		deb := debs[arch]
		t.Run(arch+"/info", func(t *testing.T) { checkInfo(t, deb, arch) })
		t.Run(arch+"/contents", func(t *testing.T) { checkContents(t, deb) })
		t.Run(arch+"/control", func(t *testing.T) { checkControl(t, deb) })
		t.Run(arch+"/files", func(t *testing.T) { checkFiles(t, deb) })
		// lintian takes seconds a package and waits on nothing of the
		// others: the two run beside each other and the install.
		t.Run(arch+"/lintian", func(t *testing.T) { t.Parallel(); checkLintian(t, deb) })
	}
	t.Run("amd64/install", func(t *testing.T) { t.Parallel(); checkInstall(t, debs["amd64"]) })
}

func checkInfo(t *testing.T, deb, arch string) {
	want := map[string]string{
		"Package":      "mxedge",
		"Version":      testDebVersion,
		"Architecture": arch,
		"Depends":      "adduser, libc6",
		"Recommends":   "libssl3 | libssl3t64",
		"Maintainer":   maintainer,
		"Section":      "net",
	}
	for field, w := range want {
		got := strings.TrimSpace(run(t, "", nil, "dpkg-deb", "--field", deb, field))
		if got != w {
			t.Errorf("%s = %q, want %q", field, got, w)
		}
	}
}

// entry is one line of `dpkg-deb --contents`.
type entry struct{ mode, owner string }

func contents(t *testing.T, deb string) map[string]entry {
	t.Helper()
	got := make(map[string]entry)
	sc := bufio.NewScanner(strings.NewReader(run(t, "", nil, "dpkg-deb", "--contents", deb)))
	for sc.Scan() {
		// drwxr-xr-x root/root         0 2026-11-26 21:05 ./etc/
		f := strings.Fields(sc.Text())
		if len(f) < 6 {
			t.Fatalf("unexpected dpkg-deb --contents line %q", sc.Text())
		}
		got[strings.TrimPrefix(f[5], ".")] = entry{f[0], f[1]}
	}
	return got
}

func checkContents(t *testing.T, deb string) {
	wantFiles := map[string]string{
		"/usr/bin/mxedge":                               "-rwxr-xr-x",
		"/lib/systemd/system/mxedge.service":            "-rw-r--r--",
		"/usr/lib/sysusers.d/mxedge.conf":               "-rw-r--r--",
		"/usr/lib/tmpfiles.d/mxedge.conf":               "-rw-r--r--",
		"/etc/mxedge/config.yaml":                       "-rw-r--r--",
		"/usr/share/doc/mxedge/copyright":               "-rw-r--r--",
		"/usr/share/doc/mxedge/changelog.gz":            "-rw-r--r--",
		"/usr/share/man/man1/mxedge.1.gz":               "-rw-r--r--",
		"/usr/share/bash-completion/completions/mxedge": "-rw-r--r--",
		"/usr/share/lintian/overrides/mxedge":           "-rw-r--r--",
	}
	got := contents(t, deb)
	var files []string
	for path, e := range got {
		if e.owner != "root/root" {
			t.Errorf("%s owned by %s, want root/root", path, e.owner)
		}
		if strings.HasPrefix(path, "/var/") {
			// State is created by tmpfiles.d/StateDirectory=, never owned by dpkg.
			t.Errorf("package ships %s; /var/lib/mxedge must be created, not shipped", path)
		}
		if e.mode[0] == 'd' {
			if e.mode != "drwxr-xr-x" {
				t.Errorf("directory %s has mode %s, want drwxr-xr-x", path, e.mode)
			}
			continue
		}
		files = append(files, path)
		if w, ok := wantFiles[path]; ok && e.mode != w {
			t.Errorf("%s has mode %s, want %s", path, e.mode, w)
		}
	}
	var want []string
	for p := range wantFiles {
		want = append(want, p)
	}
	slices.Sort(files)
	slices.Sort(want)
	if !slices.Equal(files, want) {
		t.Errorf("files in package:\n%s\nwant:\n%s", strings.Join(files, "\n"), strings.Join(want, "\n"))
	}
}

func checkControl(t *testing.T, deb string) {
	dir := t.TempDir()
	run(t, "", nil, "dpkg-deb", "--control", deb, dir)

	conffiles, err := os.ReadFile(filepath.Join(dir, "conffiles"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Fields(string(conffiles)); !slices.Equal(got, []string{"/etc/mxedge/config.yaml"}) {
		t.Errorf("conffiles = %q, want [/etc/mxedge/config.yaml]", got)
	}

	for _, script := range []string{"postinst", "prerm", "postrm"} {
		path := filepath.Join(dir, script)
		fi, err := os.Stat(path)
		if err != nil {
			t.Errorf("%s missing: %v", script, err)
			continue
		}
		if fi.Mode().Perm() != 0o755 {
			t.Errorf("%s mode %v, want 0755", script, fi.Mode().Perm())
		}
		run(t, "", nil, "sh", "-n", path)
		body, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(body, []byte("#!/bin/sh\n")) || !bytes.Contains(body, []byte("\nset -e\n")) {
			t.Errorf("%s: want a #!/bin/sh script with set -e", script)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "preinst")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("unexpected preinst (err=%v)", err)
	}
}

// checkFiles compares shipped files with their sources in the tree and checks
// the generated changelog.
func checkFiles(t *testing.T, deb string) {
	dir := t.TempDir()
	run(t, "", nil, "dpkg-deb", "--extract", deb, dir)
	root := repoRoot(t)
	same := map[string]string{
		"etc/mxedge/config.yaml":                       "config.example.yaml",
		"lib/systemd/system/mxedge.service":            "systemd/mxedge.service",
		"usr/lib/sysusers.d/mxedge.conf":               "systemd/mxedge.sysusers",
		"usr/lib/tmpfiles.d/mxedge.conf":               "systemd/mxedge.tmpfiles",
		"usr/share/doc/mxedge/copyright":               "packaging/deb/copyright",
		"usr/share/lintian/overrides/mxedge":           "packaging/deb/lintian-overrides",
		"usr/share/bash-completion/completions/mxedge": "packaging/completion/mxedge.bash",
	}
	for shipped, src := range same {
		a, err := os.ReadFile(filepath.Join(dir, shipped))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(root, src))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("/%s differs from %s", shipped, src)
		}
	}

	changelog := run(t, "", nil, "sh", "-c", `gzip -dc "$1"`, "sh", filepath.Join(dir, "usr/share/doc/mxedge/changelog.gz"))
	if !strings.HasPrefix(changelog, "mxedge ("+testDebVersion+") unstable; urgency=medium\n") {
		t.Errorf("changelog starts %q", strings.SplitN(changelog, "\n", 2)[0])
	}
	if _, err := exec.LookPath("dpkg-parsechangelog"); err == nil {
		log := filepath.Join(t.TempDir(), "changelog")
		if err := os.WriteFile(log, []byte(changelog), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSpace(run(t, "", nil, "dpkg-parsechangelog", "-l", log, "-S", "Version")); got != testDebVersion {
			t.Errorf("dpkg-parsechangelog Version = %q, want %q", got, testDebVersion)
		}
	} else {
		t.Log("dpkg-parsechangelog (dpkg-dev) not installed; changelog syntax not checked")
	}
}

// checkLintian fails on any E: tag and logs the rest, so warnings stay
// visible without blocking.
func checkLintian(t *testing.T, deb string) {
	lintian := needTool(t, "lintian")
	// lintian leaves its ELF cache directories (mldbm-elf-*) behind in
	// TMPDIR: give it the test's own, removed when the test ends.
	out, err := runErr("", []string{"TMPDIR=" + t.TempDir()}, lintian, "--tag-display-limit", "0", "--display-info", deb)
	var exit *exec.ExitError
	if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 1) {
		t.Fatalf("lintian failed to run: %v", err)
	}
	var errs int
	for line := range strings.Lines(out) {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "E: "):
			errs++
			t.Errorf("lintian: %s", line)
		case line != "":
			t.Logf("lintian: %s", line)
		}
	}
	if err != nil && errs == 0 {
		t.Errorf("lintian exited 1 without an E: tag:\n%s", out)
	}
}

// dpkgRoot is an empty dpkg database under a throwaway root. Maintainer
// scripts run on the host with DPKG_ROOT set (--force-script-chrootless),
// which is why every path in them is prefixed with DPKG_ROOT: nothing may
// touch the host.
type dpkgRoot struct {
	t   *testing.T
	dir string
}

func newDpkgRoot(t *testing.T) *dpkgRoot {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers", "etc"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"var/lib/dpkg/status", "var/lib/dpkg/available"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return &dpkgRoot{t, dir}
}

func (r *dpkgRoot) dpkg(args ...string) {
	r.t.Helper()
	// adduser is not in this empty database; the scripts use systemd-sysusers.
	base := []string{"--root=" + r.dir, "--force-not-root", "--force-script-chrootless",
		"--force-depends", "--log=/dev/null"}
	run(r.t, "", nil, "dpkg", append(base, args...)...)
}

func (r *dpkgRoot) path(p string) string { return filepath.Join(r.dir, p) }

// ids returns uid and gid of name from the root's own /etc/passwd.
func (r *dpkgRoot) ids(name string) (uid, gid int) {
	r.t.Helper()
	b, err := os.ReadFile(r.path("etc/passwd"))
	if err != nil {
		r.t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		f := strings.Split(strings.TrimSpace(line), ":")
		if len(f) == 7 && f[0] == name {
			uid, _ = strconv.Atoi(f[2])
			gid, _ = strconv.Atoi(f[3])
			if f[5] != "/var/lib/mxedge" || f[6] != "/usr/sbin/nologin" {
				r.t.Errorf("passwd entry %q: want home /var/lib/mxedge, shell /usr/sbin/nologin", line)
			}
			if uid <= 0 || uid >= 1000 {
				r.t.Errorf("uid %d is not a system uid", uid)
			}
			return uid, gid
		}
	}
	r.t.Fatalf("no %s in %s/etc/passwd:\n%s", name, r.dir, b)
	return 0, 0
}

// wantStat checks mode and ownership of a path under the root.
func (r *dpkgRoot) wantStat(p string, mode fs.FileMode, uid, gid int) {
	r.t.Helper()
	fi, err := os.Lstat(r.path(p))
	if err != nil {
		r.t.Errorf("%s: %v", p, err)
		return
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode().Perm() != mode || int(st.Uid) != uid || int(st.Gid) != gid {
		r.t.Errorf("%s: mode %v owner %d:%d, want %v %d:%d", p, fi.Mode().Perm(), st.Uid, st.Gid, mode, uid, gid)
	}
}

func (r *dpkgRoot) wantAbsent(p string) {
	r.t.Helper()
	if _, err := os.Lstat(r.path(p)); !errors.Is(err, fs.ErrNotExist) {
		r.t.Errorf("%s still exists (err=%v)", p, err)
	}
}

// checkInstall installs, upgrades, removes and purges the package in a
// throwaway root and checks what the maintainer scripts did there.
func checkInstall(t *testing.T, deb string) {
	needTool(t, "dpkg")
	needTool(t, "systemd-sysusers")
	needTool(t, "systemd-tmpfiles")
	if os.Geteuid() != 0 {
		// The scripts chown into the root; dpkg --force-not-root cannot fake that.
		if os.Getenv("CI") == "true" {
			t.Fatal("CI must run as root for the install test")
		}
		t.Skip("needs root to chown files inside the throwaway root")
	}
	r := newDpkgRoot(t)
	r.dpkg("--install", deb)

	uid, gid := r.ids("mxedge")
	if b, _ := os.ReadFile(r.path("etc/group")); !regexp.MustCompile(`(?m)^mxedge:x:` + strconv.Itoa(gid) + `:`).Match(b) {
		t.Errorf("no mxedge group %d in etc/group:\n%s", gid, b)
	}
	r.wantStat("var/lib/mxedge", 0o750, uid, gid)
	r.wantStat("etc/mxedge", 0o750, 0, gid)
	r.wantStat("etc/mxedge/config.yaml", 0o640, 0, gid)
	r.wantStat("usr/bin/mxedge", 0o755, 0, 0)
	if dst, err := os.Readlink(r.path("etc/systemd/system/multi-user.target.wants/mxedge.service")); err != nil || dst != "/lib/systemd/system/mxedge.service" {
		t.Errorf("unit not enabled: link -> %q, %v", dst, err)
	}
	if out, err := runErr("", nil, r.path("usr/bin/mxedge")); err != nil || out != "mxedge "+testVersion+"\n" {
		t.Errorf("installed binary printed %q, %v", out, err)
	}
	checkVerify(t, r)

	// Upgrade (same package again takes the upgrade path: postinst
	// configure with the old version) keeps state and the admin's config.
	state := r.path("var/lib/mxedge/cache.db")
	if err := os.WriteFile(state, []byte("cache"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(state, uid, gid); err != nil {
		t.Fatal(err)
	}
	cfg := r.path("etc/mxedge/config.yaml")
	edited, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	edited = append(edited, "# edited by the operator\n"...)
	if err := os.WriteFile(cfg, edited, 0o640); err != nil {
		t.Fatal(err)
	}
	r.dpkg("--install", deb)
	r.wantStat("var/lib/mxedge/cache.db", 0o600, uid, gid)
	r.wantStat("var/lib/mxedge", 0o750, uid, gid)
	if got, _ := os.ReadFile(cfg); !bytes.Equal(got, edited) {
		t.Error("upgrade replaced the operator's config.yaml")
	}

	// Remove: binary gone, unit masked, state and config kept.
	r.dpkg("--remove", "mxedge")
	r.wantAbsent("usr/bin/mxedge")
	if dst, err := os.Readlink(r.path("etc/systemd/system/mxedge.service")); err != nil || dst != "/dev/null" {
		t.Errorf("after remove: unit mask -> %q, %v; want /dev/null", dst, err)
	}
	r.wantStat("var/lib/mxedge/cache.db", 0o600, uid, gid)
	if _, err := os.Stat(cfg); err != nil {
		t.Errorf("remove deleted the conffile: %v", err)
	}

	// Purge: state, config, mask and enablement gone; the user stays.
	r.dpkg("--purge", "mxedge")
	r.wantAbsent("var/lib/mxedge")
	r.wantAbsent("etc/mxedge")
	r.wantAbsent("etc/systemd/system/mxedge.service")
	r.wantAbsent("etc/systemd/system/multi-user.target.wants/mxedge.service")
	if u, _ := r.ids("mxedge"); u != uid {
		t.Errorf("uid changed to %d after purge", u)
	}
}

// checkVerify runs `systemd-analyze verify` on the unit as installed. The
// throwaway root gets the host's units (targets the unit refers to) and kill
// (ExecReload); --man=no because host man cannot see the root's man page,
// whose presence checkContents asserts.
func checkVerify(t *testing.T, r *dpkgRoot) {
	t.Helper()
	analyze := needTool(t, "systemd-analyze")
	run(t, "", nil, "cp", "-an", "/lib/systemd/system/.", r.path("lib/systemd/system/"))
	if err := os.MkdirAll(r.path("bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, "", nil, "cp", "/bin/kill", r.path("bin/kill"))
	out, err := runErr("", nil, analyze, "verify", "--man=no", "--root="+r.dir, "mxedge.service")
	if err != nil {
		t.Errorf("systemd-analyze verify: %v", err)
	} else if strings.TrimSpace(out) != "" {
		t.Logf("systemd-analyze verify: %s", out)
	}
}

var exposure = regexp.MustCompile(`Overall exposure level for mxedge\.service: (\d+\.\d+)`)

// TestSystemdSecurity keeps the unit's hardening from eroding: lower is
// better, and 2.0 is the bar.
func TestSystemdSecurity(t *testing.T) {
	analyze := needTool(t, "systemd-analyze")
	unit := filepath.Join(repoRoot(t), "systemd", "mxedge.service")
	out, err := runErr("", nil, analyze, "security", "--offline=true", "--threshold=20", unit)
	m := exposure.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure level in systemd-analyze output (err=%v):\n%s", err, out)
	}
	score, _ := strconv.ParseFloat(m[1], 64)
	t.Logf("systemd-analyze security: %.1f", score)
	if score > 2.0 || err != nil {
		t.Errorf("exposure %.1f (err=%v), want ≤ 2.0; failing directives:\n%s", score, err, failing(out))
	}
}

func failing(out string) string {
	var b strings.Builder
	for line := range strings.Lines(out) {
		if strings.HasPrefix(line, "✗") {
			b.WriteString(line)
		}
	}
	return b.String()
}

// TestUnitDirectives pins the directives the daemon's design relies on, so
// an edit that keeps the score but breaks the contract (sd_notify, reload,
// the state directory) is caught.
func TestUnitDirectives(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "systemd", "mxedge.service"))
	if err != nil {
		t.Fatal(err)
	}
	got := make(map[string][]string)
	for line := range strings.Lines(string(b)) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if ok && !strings.HasPrefix(k, "#") {
			got[k] = append(got[k], v)
		}
	}
	want := map[string][]string{
		"Type":                    {"notify"},
		"NotifyAccess":            {"main"},
		"ExecStart":               {"/usr/bin/mxedge run --config /etc/mxedge/config.yaml"},
		"ExecReload":              {"/bin/kill -HUP $MAINPID"},
		"WatchdogSec":             {"30s"},
		"Restart":                 {"on-failure"},
		"User":                    {"mxedge"},
		"Group":                   {"mxedge"},
		"StateDirectory":          {"mxedge"},
		"StateDirectoryMode":      {"0750"},
		"ConfigurationDirectory":  {"mxedge"},
		"AmbientCapabilities":     {"CAP_NET_BIND_SERVICE"},
		"CapabilityBoundingSet":   {"CAP_NET_BIND_SERVICE"},
		"RestrictAddressFamilies": {"AF_INET AF_INET6 AF_UNIX"},
		"SystemCallFilter":        {"@system-service", "~@privileged @resources"},
		"LimitNOFILE":             {"65536"},
		"UMask":                   {"0027"},
	}
	for k, w := range want {
		if !slices.Equal(got[k], w) {
			t.Errorf("%s = %q, want %q", k, got[k], w)
		}
	}
	for _, k := range []string{"IPAddressDeny", "PrivateNetwork", "PrivateUsers"} {
		// The daemon must reach the network, and CAP_NET_BIND_SERVICE only
		// works in the host's user namespace.
		if _, ok := got[k]; ok {
			t.Errorf("%s must not be set", k)
		}
	}
}

func TestDebVersion(t *testing.T) {
	needTool(t, "make")
	tests := []struct{ version, want string }{
		{"v1.2.3", "1.2.3"},
		{"1.2.3", "1.2.3"},
		{"v1.2.3-4-gdeadbee", "1.2.3+4.gdeadbee"},
		{"v1.2.3-4-gdeadbee-dirty", "1.2.3+4.gdeadbee.dirty"},
		{"v1.3.0-rc1", "1.3.0~rc1"},
		{"v1.3.0-rc.1-2-gabc", "1.3.0~rc.1+2.gabc"},
		{"dev", "0~dev"},
		{"deadbee", "0~deadbee"},
	}
	for _, tt := range tests {
		t.Run(tt.version, func(t *testing.T) {
			got := strings.TrimSpace(run(t, repoRoot(t), nil, "make", "-s", "-f", "packaging/deb.mk", "deb-version", "VERSION="+tt.version))
			if got != tt.want {
				t.Errorf("DEB_VERSION for %q = %q, want %q", tt.version, got, tt.want)
			}
		})
	}
}

// TestDebNeedsConfigExample: packaging without the example config must stop
// with a message that says what is missing, not ship a package without it.
func TestDebNeedsConfigExample(t *testing.T) {
	needTool(t, "make")
	empty := t.TempDir()
	out, err := runErr(empty, nil, "make", "-s", "-f", filepath.Join(repoRoot(t), "packaging", "deb.mk"), "deb-pkg-amd64", "MXEDGE_BIN=/bin/true")
	if err == nil {
		t.Fatalf("make succeeded without config.example.yaml:\n%s", out)
	}
	if !strings.Contains(err.Error(), "config.example.yaml is missing") {
		t.Errorf("error does not name config.example.yaml: %v", err)
	}
}

func TestDebianChangelog(t *testing.T) {
	const md = "# Changelog\n\nIntro.\n\n## [Unreleased]\n\n### Added\n- new thing that is described at some length so that the bullet needs wrapping\n  over two lines of\n  markdown\n* star bullet\n\n## [0.1.0] - 2026-01-01\n- first release\n"
	const tail = "\n\n -- M <m@example.net>  Thu, 01 Jan 1970 00:00:00 +0000\n"
	tests := []struct {
		name, version, md, want string
	}{
		{"version section", "0.1.0", md, "mxedge (0.1.0) unstable; urgency=medium\n\n  * first release" + tail},
		{"unreleased", "0.2.0", md, "mxedge (0.2.0) unstable; urgency=medium\n\n" +
			"  * new thing that is described at some length so that the bullet needs\n" +
			"    wrapping over two lines of markdown\n" +
			"  * star bullet" + tail},
		{"no changelog", "0~dev", "", "mxedge (0~dev) unstable; urgency=medium\n\n  * Release 0~dev." + tail},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "CHANGELOG.md")
			if tt.md != "" {
				if err := os.WriteFile(path, []byte(tt.md), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got := run(t, "", []string{"SOURCE_DATE_EPOCH=0"}, "sh", filepath.Join(repoRoot(t), "packaging", "debian-changelog.sh"), tt.version, "M <m@example.net>", path)
			if got != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}
