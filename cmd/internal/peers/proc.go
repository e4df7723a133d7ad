package peers

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrNotInstalled wraps the error of a missing peer binary, so tests can
// skip locally and fail in CI.
var ErrNotInstalled = errors.New("peer binary not installed")

// LookBin resolves a peer binary, wrapping ErrNotInstalled when absent.
func LookBin(name string) (string, error) {
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%w: %s: %v", ErrNotInstalled, name, err)
	}
	return p, nil
}

// lookBinOr resolves bin, or the peer's usual binary name when bin is "".
func lookBinOr(bin, name string) (string, error) {
	if bin == "" {
		bin = name
	}
	return LookBin(bin)
}

// stopGrace is how long a peer gets to exit on SIGTERM before SIGKILL.
const stopGrace = 5 * time.Second

// process is one run of a peer binary whose combined output is appended to
// a log file and scanned for a readiness line.
type process struct {
	cmd     *exec.Cmd
	done    chan struct{} // closed when the process has exited
	waitErr error
	ready   chan struct{} // closed when readyLine was seen
}

// startProcess runs bin with args, appending stdout and stderr to logPath.
// If readyLine is non-empty the returned process's ready channel closes
// when a line containing it appears.
func startProcess(bin string, args []string, dir, logPath, readyLine string) (*process, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout = pw
	cmd.Stderr = pw
	// Own process group: a terminal's ^C doesn't hit the peer before the
	// test's cleanup does, and signals go to this PID only.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	p := &process{cmd: cmd, done: make(chan struct{}), ready: make(chan struct{})}
	var once sync.Once
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(logf, line)
			if readyLine != "" && strings.Contains(line, readyLine) {
				once.Do(func() { close(p.ready) })
			}
		}
		_, _ = io.Copy(logf, pr) // drain an over-long line's remainder
	}()
	go func() {
		p.waitErr = cmd.Wait()
		pw.Close()
		<-scanned
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *process) pid() int { return p.cmd.Process.Pid }

// waitReady waits for the readiness line, the process's exit or ctx.
func (p *process) waitReady(ctx context.Context, logPath string) error {
	select {
	case <-p.ready:
		return nil
	case <-p.done:
		return fmt.Errorf("%s exited before ready (%v):\n%s", p.cmd.Path, p.waitErr, tail(logPath, 40))
	case <-ctx.Done():
		return fmt.Errorf("%s not ready: %w\n%s", p.cmd.Path, ctx.Err(), tail(logPath, 40))
	}
}

// stop sends SIGTERM, then SIGKILL after stopGrace, and waits for exit.
// A stopped (SIGSTOP) process is continued first so it can handle SIGTERM.
func (p *process) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	_ = p.cmd.Process.Signal(syscall.SIGCONT)
	t := time.NewTimer(stopGrace)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *process) signal(sig syscall.Signal) error { return p.cmd.Process.Signal(sig) }

// running is the current process of a peer that a test may stop, pause or
// restart while its cleanup or another goroutine asks for the PID: one
// guarded slot, so each peer's Stop/PID/Pause don't repeat the locking.
type running struct {
	name string // for the not-running error
	mu   sync.Mutex
	proc *process
}

func (r *running) set(p *process) {
	r.mu.Lock()
	r.proc = p
	r.mu.Unlock()
}

// pid is the process id, 0 when stopped.
func (r *running) pid() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.proc == nil {
		return 0
	}
	return r.proc.pid()
}

// stop empties the slot and stops what was in it; stopping twice is a no-op.
func (r *running) stop() {
	r.mu.Lock()
	p := r.proc
	r.proc = nil
	r.mu.Unlock()
	if p != nil {
		p.stop()
	}
}

func (r *running) signal(sig syscall.Signal) error {
	r.mu.Lock()
	p := r.proc
	r.mu.Unlock()
	if p == nil {
		return fmt.Errorf("peers: %s not running", r.name)
	}
	return p.signal(sig)
}

func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	return lastLines(string(data), n)
}

// FreePort returns a port that was free on 127.0.0.1 for network "tcp" or
// "udp" a moment ago. Peers configured from files can't take a :0 listener,
// so this small race is the price.
func FreePort(network string) (int, error) {
	// A port handed out for a peer to bind later is taken from below the
	// kernel's ephemeral range: the daemon's own :0 listeners and every
	// outgoing connection draw from that range, and could otherwise be
	// given the very port just released here before its peer binds it.
	lo, hi := belowEphemeral()
	var last error
	for range 64 {
		port := lo + rand.IntN(hi-lo)
		// Tests of one package run in parallel in one process: a port
		// handed out once is never handed out again, so two peers started
		// at the same moment cannot both be given it.
		if _, taken := handedOut.LoadOrStore(port, true); taken {
			continue
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		switch network {
		case "tcp":
			l, err := net.Listen("tcp", addr)
			if err != nil {
				last = err
				continue
			}
			l.Close()
			return port, nil
		case "udp":
			c, err := net.ListenPacket("udp", addr)
			if err != nil {
				last = err
				continue
			}
			c.Close()
			return port, nil
		default:
			return 0, fmt.Errorf("FreePort: network %q", network)
		}
	}
	return 0, fmt.Errorf("FreePort: no free %s port in %d..%d: %w", network, lo, hi, last)
}

// handedOut holds every port FreePort has returned in this process.
var handedOut sync.Map

// belowEphemeral is the range FreePort picks from: from 20000 up to the
// start of /proc/sys/net/ipv4/ip_local_port_range (32768 when unreadable).
func belowEphemeral() (lo, hi int) {
	lo, hi = 20000, 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > lo+1000 {
				hi = n
			}
		}
	}
	return lo, hi
}

// freePorts returns n distinct ports that were free on network.
func freePorts(network string, n int) ([]int, error) {
	seen := map[int]bool{}
	var out []int
	for tries := 0; len(out) < n && tries < 10*n; tries++ {
		p, err := FreePort(network)
		if err != nil {
			return nil, err
		}
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	if len(out) < n {
		return nil, fmt.Errorf("freePorts: got %d of %d", len(out), n)
	}
	return out, nil
}
