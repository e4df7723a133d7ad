package peers

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/mxedge/mxedge/internal/labpki"
)

// RadsecproxyOptions configures StartRadsecproxy: plain RADIUS in on UDP
// from 127.0.0.1, RadSec out to Server.
type RadsecproxyOptions struct {
	// Bin is the binary; "radsecproxy" when empty.
	Bin string
	// ListenPort is the UDP port on 127.0.0.1 (a free one when 0).
	ListenPort int
	// Secret is the UDP client secret; "testing123" when empty.
	Secret string
	// Server is the RadSec server's host:port.
	Server string
	// Servers, when set instead of Server, are several RadSec servers
	// that radsecproxy uses in failover, in this order (the backup-server
	// list of a managed access point). Readiness waits for the first.
	Servers []string
	// StatusServer turns on radsecproxy's Status-Server probing of its
	// servers, which is how it notices a dead one between requests.
	StatusServer bool
	// PKI supplies the client certificate (RadSecClient) and trust
	// (RadSecCAFile) unless CertFile, KeyFile and CAFile are set.
	PKI                       *labpki.PKI
	CertFile, KeyFile, CAFile string
	// NoWaitUpstream returns once the UDP listener is up instead of
	// waiting for the TLS connection to Server (for a server that is down
	// on purpose).
	NoWaitUpstream bool
	// LogLevel is radsecproxy's -d level 1..5; 3 when 0.
	LogLevel int
	// ListenTLS, when set, is a 127.0.0.1 port where radsecproxy also
	// accepts RadSec from 127.0.0.0/8 clients whose certificates chain to
	// CAFile (radsecproxy as a RadSec server, for comparisons).
	ListenTLS int
}

// Radsecproxy is a running radsecproxy.
type Radsecproxy struct {
	Dir    string
	Conf   string
	Logs   string
	Addr   string // UDP listener host:port
	Secret string

	run running
}

// The server block's name shows in radsecproxy's "TLS connection to
// <name> (…) up" line, which is the readiness signal.
const radsecproxyServerName = "home"

// StartRadsecproxy writes a config into dir and runs radsecproxy in the
// foreground, returning once its TLS connection to the server is up (or
// just its UDP listener with NoWaitUpstream), bounded by ctx.
func StartRadsecproxy(ctx context.Context, dir string, opts RadsecproxyOptions) (*Radsecproxy, error) {
	bin, err := lookBinOr(opts.Bin, "radsecproxy")
	if err != nil {
		return nil, err
	}
	if opts.PKI != nil {
		if opts.CertFile == "" {
			opts.CertFile = opts.PKI.RadSecClient.Chain
		}
		if opts.KeyFile == "" {
			opts.KeyFile = opts.PKI.RadSecClient.Key
		}
		if opts.CAFile == "" {
			opts.CAFile = opts.PKI.RadSecCAFile
		}
	}
	if opts.CertFile == "" || opts.KeyFile == "" || opts.CAFile == "" {
		return nil, errors.New("peers: radsecproxy needs a client certificate, key and CA")
	}
	servers := opts.Servers
	if len(servers) == 0 {
		servers = []string{opts.Server}
	}
	var blocks, names strings.Builder
	for i, srv := range servers {
		host, port, err := net.SplitHostPort(srv)
		if err != nil {
			return nil, fmt.Errorf("peers: radsecproxy server %q: %w", srv, err)
		}
		name := radsecproxyServerName
		if i > 0 {
			name = fmt.Sprintf("%s%d", radsecproxyServerName, i)
		}
		status := "off"
		if opts.StatusServer {
			status = "on"
		}
		fmt.Fprintf(&blocks, "server %s {\n\thost %s\n\tport %s\n\ttype tls\n\ttls default\n\tsecret radsec\n\tStatusServer %s\n}\n", name, host, port, status)
		fmt.Fprintf(&names, "\tserver %s\n\taccountingServer %s\n", name, name)
	}
	if opts.Secret == "" {
		opts.Secret = "testing123"
	}
	if opts.LogLevel == 0 {
		opts.LogLevel = 3
	}
	if opts.ListenPort == 0 {
		if opts.ListenPort, err = FreePort("udp"); err != nil {
			return nil, err
		}
	}
	r := &Radsecproxy{
		Dir:    dir,
		Conf:   filepath.Join(dir, "radsecproxy.conf"),
		Logs:   filepath.Join(dir, "radsecproxy.log"),
		Addr:   net.JoinHostPort("127.0.0.1", strconv.Itoa(opts.ListenPort)),
		Secret: opts.Secret,
		run:    running{name: "radsecproxy"},
	}
	// radsecproxy's config has no quoting; paths come from our own temp
	// dirs, secrets from tests.
	tlsIn := ""
	if opts.ListenTLS != 0 {
		tlsIn = fmt.Sprintf("ListenTLS 127.0.0.1:%d\nclient tlsclients {\n\thost 127.0.0.0/8\n\ttype tls\n\ttls default\n\tsecret radsec\n}\n", opts.ListenTLS)
	}
	conf := fmt.Sprintf(`# written by mxedge peers
ListenUDP %s
LogLevel %d
tls default {
	CACertificateFile %s
	CertificateFile %s
	CertificateKeyFile %s
}
%sclient lo {
	host 127.0.0.1
	type udp
	secret %s
}
%srealm * {
%s}
`, r.Addr, opts.LogLevel, opts.CAFile, opts.CertFile, opts.KeyFile, tlsIn, opts.Secret, blocks.String(), names.String())
	if err := os.WriteFile(r.Conf, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	ready := "TLS connection to " + radsecproxyServerName + " ("
	if opts.NoWaitUpstream {
		ready = "createlistener: listening for udp"
	}
	p, err := startProcess(bin, []string{"-f", "-d", strconv.Itoa(opts.LogLevel), "-c", r.Conf}, dir, r.Logs, ready)
	if err != nil {
		return nil, err
	}
	if err := p.waitReady(ctx, r.Logs); err != nil {
		p.stop()
		return nil, err
	}
	r.run.set(p)
	return r, nil
}

// PID is the process id (0 when stopped).
func (r *Radsecproxy) PID() int { return r.run.pid() }

// Stop terminates radsecproxy (SIGTERM, then SIGKILL) and waits for it.
func (r *Radsecproxy) Stop() { r.run.stop() }

// Pause freezes radsecproxy (SIGSTOP); Resume continues it.
func (r *Radsecproxy) Pause() error { return r.run.signal(syscall.SIGSTOP) }

// Resume continues a paused radsecproxy (SIGCONT).
func (r *Radsecproxy) Resume() error { return r.run.signal(syscall.SIGCONT) }
