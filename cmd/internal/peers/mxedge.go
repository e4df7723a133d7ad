package peers

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/mxedge/mxedge/internal/labpki"
)

// MxedgeClient is one RADIUS client entry in a generated mxedge config.
type MxedgeClient struct {
	Name, Address, Secret string
}

// MxedgeOptions describes a generated mxedge config for benchmarks and the
// demo: loopback listeners, RadSec upstreams with the lab PKI.
type MxedgeOptions struct {
	Bin       string // path of the mxedge binary
	PKI       *labpki.PKI
	AuthPort  int // free ports when 0
	AcctPort  int
	Metrics   int
	Clients   []MxedgeClient
	Upstreams []string
	LogLevel  string // "info" when empty (the ready line is logged at info)
	// Extra is YAML appended to the generated config.
	Extra string
}

// Mxedge is a running mxedge daemon.
type Mxedge struct {
	Dir, Config, Logs string
	AuthAddr          string
	AcctAddr          string
	MetricsAddr       string
	proc              *process
}

// StartMxedge writes a config into dir, starts `mxedge run` and waits for
// its "mxedge ready" line, bounded by ctx.
func StartMxedge(ctx context.Context, dir string, o MxedgeOptions) (*Mxedge, error) {
	if o.Bin == "" {
		return nil, fmt.Errorf("peers: mxedge binary path required")
	}
	var err error
	for _, p := range []*int{&o.AuthPort, &o.AcctPort} {
		if *p == 0 {
			if *p, err = FreePort("udp"); err != nil {
				return nil, err
			}
		}
	}
	if o.Metrics == 0 {
		if o.Metrics, err = FreePort("tcp"); err != nil {
			return nil, err
		}
	}
	if o.LogLevel == "" {
		o.LogLevel = "info"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "state_dir: %s\nlog:\n  level: %s\nmetrics:\n  listen: 127.0.0.1:%d\n", filepath.Join(dir, "state"), o.LogLevel, o.Metrics)
	fmt.Fprintf(&b, "radius:\n  auth_listen: [\"127.0.0.1:%d\"]\n  acct_listen: [\"127.0.0.1:%d\"]\n  clients:\n", o.AuthPort, o.AcctPort)
	for _, c := range o.Clients {
		fmt.Fprintf(&b, "    - name: %s\n      address: %s\n      secret: %q\n", c.Name, c.Address, c.Secret)
	}
	if len(o.Upstreams) > 0 {
		var ups []string
		for _, u := range o.Upstreams {
			ups = append(ups, fmt.Sprintf("%q", u))
		}
		fmt.Fprintf(&b, "cloud:\n  radsec:\n    servers: [%s]\n    ca: %s\n    cert: %s\n    key: %s\n",
			strings.Join(ups, ", "), o.PKI.RadSecCAFile, o.PKI.RadSecClient.Chain, o.PKI.RadSecClient.Key)
	}
	b.WriteString(o.Extra)
	m := &Mxedge{
		Dir: dir, Config: filepath.Join(dir, "config.yaml"), Logs: filepath.Join(dir, "mxedge.log"),
		AuthAddr:    fmt.Sprintf("127.0.0.1:%d", o.AuthPort),
		AcctAddr:    fmt.Sprintf("127.0.0.1:%d", o.AcctPort),
		MetricsAddr: fmt.Sprintf("127.0.0.1:%d", o.Metrics),
	}
	if err := os.MkdirAll(filepath.Join(dir, "state"), 0o750); err != nil {
		return nil, err
	}
	if err := os.WriteFile(m.Config, []byte(b.String()), 0o600); err != nil {
		return nil, err
	}
	m.proc, err = startProcess(o.Bin, []string{"run", "--config", m.Config}, dir, m.Logs, "mxedge ready")
	if err != nil {
		return nil, err
	}
	if err := m.proc.waitReady(ctx, m.Logs); err != nil {
		m.proc.stop()
		return nil, err
	}
	return m, nil
}

// PID is the daemon's process id.
func (m *Mxedge) PID() int { return m.proc.pid() }

// Stop sends SIGTERM and waits, then SIGKILL after a grace period.
func (m *Mxedge) Stop() { m.proc.stop() }

// Reload sends SIGHUP.
func (m *Mxedge) Reload() error { return m.proc.signal(syscall.SIGHUP) }
