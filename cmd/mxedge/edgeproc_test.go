package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mxedge/mxedge/internal/labpki"
)

// edgeBin is the mxedge binary under test, built once by TestMain (or
// taken from MXEDGE_BIN); cloudBin is the lab cloud, likewise.
var edgeBin, cloudBin string

func TestMain(m *testing.M) {
	code := func() int {
		dir, err := os.MkdirTemp("", "mxedge-bin")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		for _, b := range []struct {
			bin *string
			env string
			pkg string
		}{{&edgeBin, "MXEDGE_BIN", "."}, {&cloudBin, "MXCLOUD_BIN", "../mxcloud"}} {
			if *b.bin = os.Getenv(b.env); *b.bin != "" {
				continue
			}
			*b.bin = filepath.Join(dir, filepath.Base(filepath.Clean(b.pkg)))
			if b.pkg == "." {
				*b.bin = filepath.Join(dir, "mxedge")
			}
			build := exec.Command("go", "build", "-o", *b.bin, b.pkg)
			build.Stdout, build.Stderr = os.Stderr, os.Stderr
			if err := build.Run(); err != nil {
				fmt.Fprintln(os.Stderr, "building", b.pkg, err)
				return 1
			}
		}
		defer sharedPKI.Remove()
		return m.Run()
	}()
	os.Exit(code)
}

// edgeProc is a running mxedge binary.
type edgeProc struct {
	cmd     *exec.Cmd
	cfgPath string
	bound   // the addresses its ready line named: e.Auth, e.RadSec...
	mu      sync.Mutex
	log     strings.Builder
	exited  chan struct{}
}

// bound is what a ready line says the daemon bound, each as the
// 127.0.0.1:port a test sends to.
type bound struct {
	Auth    string
	Acct    string
	Metrics string
	// RadSec is the first RadSec listener's address; "" when it is off.
	RadSec string
}

// edgeConfig is what a test varies in the generated config.
type edgeConfig struct {
	Secret    string
	Upstreams []string
	PKI       *labpki.PKI
	Extra     string // appended YAML
	// ClientAddr is the client prefix (127.0.0.1/32 by default).
	ClientAddr string
	// ListenHost is the RADIUS listeners' address, 127.0.0.1 unless set.
	ListenHost string
	// OptOutMA sets require_message_authenticator: false.
	OptOutMA bool
	// LimitProxyState sets limit_proxy_state: true.
	LimitProxyState bool
	// StateDir is state_dir (a fresh temp dir by default); set it to
	// pre-seed the client cache before the daemon locks it.
	StateDir string
	// Mode is survivability.mode ("cloud" by default).
	Mode string
	// Survivability is YAML appended inside the survivability section,
	// each line indented by two spaces.
	Survivability string
	// MoreClients are extra radius.clients entries (YAML list items,
	// indented by four spaces).
	MoreClients string
	// NoCloudSection leaves cloud.radsec out, so the registration supplies
	// it.
	NoCloudSection bool
	// NoClients leaves radius.clients out, so the cloud's config supplies
	// them.
	NoClients bool
	// LogLevel is debug unless set: benchmarks run at the production
	// default, info, so they measure answers rather than log lines.
	LogLevel string
}

// yaml asks for port 0 everywhere: the daemon reports the ports it bound
// in its ready line (readyAddrs), so no port is picked by bind-then-release.
func (c edgeConfig) yaml(t testing.TB) string {
	addr := c.ClientAddr
	if addr == "" {
		addr = "127.0.0.1/32"
	}
	stateDir, mode := c.StateDir, c.Mode
	if stateDir == "" {
		stateDir = t.TempDir()
	}
	if mode == "" {
		mode = "cloud"
	}
	level := c.LogLevel
	if level == "" {
		level = "debug"
	}
	host := c.ListenHost
	if host == "" {
		host = "127.0.0.1"
	}
	var ups []string
	for _, u := range c.Upstreams {
		ups = append(ups, strconv.Quote(u))
	}
	cloud := ""
	if !c.NoCloudSection {
		cloud = fmt.Sprintf(`cloud:
  radsec:
    servers: [%s]
    ca: %s
    cert: %s
    key: %s
    timeout: 3s
    status_interval: 2s
`, strings.Join(ups, ", "), c.PKI.RadSecCAFile, c.PKI.RadSecClient.Chain, c.PKI.RadSecClient.Key)
	}
	clients := fmt.Sprintf(`  clients:
    - name: lab-switch
      address: %s
      secret: %q
      vendor: cisco
      site: lab
      require_message_authenticator: %v
      limit_proxy_state: %v
%s`, addr, c.Secret, !c.OptOutMA, c.LimitProxyState, c.MoreClients)
	if c.NoClients {
		clients = ""
	}
	return fmt.Sprintf(`state_dir: %s
log:
  level: %s
metrics:
  listen: 127.0.0.1:0
radius:
  auth_listen: ["%s:0"]
  acct_listen: ["%s:0"]
%s%ssurvivability:
  mode: %s
%s%s`, stateDir, level, host, host, clients,
		cloud, mode, c.Survivability, c.Extra)
}

// startEdge writes the config, starts mxedge and waits for its ready line.
func startEdge(t testing.TB, c edgeConfig) *edgeProc {
	t.Helper()
	dir := t.TempDir()
	e := &edgeProc{
		cfgPath: filepath.Join(dir, "config.yaml"),
		exited:  make(chan struct{}),
	}
	if err := os.WriteFile(e.cfgPath, []byte(c.yaml(t)), 0o600); err != nil {
		t.Fatal(err)
	}
	e.cmd = exec.Command(edgeBin, "run", "--config", e.cfgPath)
	stderr, err := e.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := e.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		once := sync.Once{}
		for sc.Scan() {
			line := sc.Text()
			e.mu.Lock()
			e.log.WriteString(line + "\n")
			e.mu.Unlock()
			if strings.Contains(line, "mxedge ready") {
				once.Do(func() { ready <- line })
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	go func() { e.cmd.Wait(); close(e.exited) }()
	t.Cleanup(func() {
		e.stop()
		if t.Failed() {
			t.Logf("mxedge log (tail):\n%s", tailString(e.Log(), 80))
		}
	})
	select {
	case line := <-ready:
		var err error
		if e.bound, err = readyAddrs(line); err != nil {
			t.Fatalf("%v\n%s", err, e.Log())
		}
	case <-e.exited:
		t.Fatalf("mxedge exited before it was ready:\n%s", e.Log())
	case <-time.After(20 * time.Second):
		t.Fatalf("mxedge not ready after 20s:\n%s", e.Log())
	}
	return e
}

// readyAddrs reads the bound auth, acct, RadSec and metrics addresses
// from the daemon's text-format ready line, where a non-empty list is a
// quoted JSON array:
//
//	msg="mxedge ready" auth="[\"127.0.0.1:40001\"]" acct=... radsec=[] metrics=127.0.0.1:40003
//
// Each is returned as 127.0.0.1:port, the address tests send to even when
// the listener is a wildcard (ListenHost 0.0.0.0). Auth, acct and metrics
// are required; radsec must be there but may be empty (listener off).
func readyAddrs(line string) (b bound, err error) {
	loopback := func(key, hostport string) (string, error) {
		_, port, err := net.SplitHostPort(hostport)
		if err != nil || port == "0" {
			return "", fmt.Errorf("ready line: %s=%q is not a bound address", key, hostport)
		}
		return net.JoinHostPort("127.0.0.1", port), nil
	}
	first := func(key string, required bool) (string, error) {
		v, err := logValue(line, key)
		if err != nil {
			return "", err
		}
		var list []string
		if err := json.Unmarshal([]byte(v), &list); err != nil || list == nil || (required && len(list) == 0) {
			return "", fmt.Errorf("ready line: %s=%s is not a list of addresses", key, v)
		}
		if len(list) == 0 {
			return "", nil
		}
		return loopback(key, list[0])
	}
	if b.Auth, err = first("auth", true); err != nil {
		return bound{}, err
	}
	if b.Acct, err = first("acct", true); err != nil {
		return bound{}, err
	}
	if b.RadSec, err = first("radsec", false); err != nil {
		return bound{}, err
	}
	m, err := logValue(line, "metrics")
	if err != nil {
		return bound{}, err
	}
	if b.Metrics, err = loopback("metrics", m); err != nil {
		return bound{}, err
	}
	return b, nil
}

// logValue returns key's value in a slog text line, unquoted.
func logValue(line, key string) (string, error) {
	_, rest, ok := strings.Cut(line, " "+key+"=")
	if !ok {
		return "", fmt.Errorf("ready line has no %s: %s", key, line)
	}
	if strings.HasPrefix(rest, `"`) {
		q, err := strconv.QuotedPrefix(rest)
		if err != nil {
			return "", fmt.Errorf("ready line: %s: %v", key, err)
		}
		return strconv.Unquote(q)
	}
	v, _, _ := strings.Cut(rest, " ")
	return v, nil
}

func (e *edgeProc) Log() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.log.String()
}

func (e *edgeProc) stop() {
	select {
	case <-e.exited:
		return
	default:
	}
	e.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-e.exited:
	case <-time.After(15 * time.Second):
		e.cmd.Process.Kill()
		<-e.exited
	}
}

// metric returns the sum of a metric's samples whose label set contains
// every label in match, scraped from /metrics.
func (e *edgeProc) metric(t testing.TB, name string, match ...string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + e.Metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	re := regexp.MustCompile(`^` + regexp.QuoteMeta(name) + `(\{[^}]*\})? (\S+)$`)
	var sum float64
	for _, line := range strings.Split(string(body), "\n") {
		m := re.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		ok := true
		for _, l := range match {
			if !strings.Contains(m[1], l) {
				ok = false
			}
		}
		if ok {
			v, _ := strconv.ParseFloat(m[2], 64)
			sum += v
		}
	}
	return sum
}

// waitFor polls cond every 20 ms until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return cond()
}

func tailString(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// sendFrom sends one raw datagram from a chosen loopback source address and
// reports whether anything came back within wait.
func sendFrom(t *testing.T, src, dst string, b []byte, wait time.Duration) bool {
	t.Helper()
	la, _ := net.ResolveUDPAddr("udp", src)
	ra, _ := net.ResolveUDPAddr("udp", dst)
	c, err := net.DialUDP("udp", la, ra)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 4096)
	_, err = c.Read(buf)
	return err == nil
}
