package radsec

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mxedge/mxedge/proxy"
)

// Defaults for Config and ServerConfig.
const (
	DefaultTimeout           = 3 * time.Second
	DefaultStatusInterval    = 10 * time.Second
	DefaultMaxConnsPerServer = 4
	DefaultReconnectMax      = time.Second
	DefaultDialTimeout       = 5 * time.Second
	DefaultWriteTimeout      = 5 * time.Second
	DefaultHandshakeTimeout  = 10 * time.Second
	DefaultMaxInFlight       = 256
)

// Config configures a Client.
type Config struct {
	// Servers are "host:port" in order of preference; traffic goes to the
	// first one that is up.
	Servers []string
	// TLS carries the client certificate and RootCAs. An empty ServerName
	// is replaced per server by its host; MinVersion is raised to TLS 1.2
	// and NextProtos cleared (Go aborts the handshake on an ALPN mismatch).
	TLS *tls.Config
	// Timeout bounds one request, across moves between connections.
	Timeout time.Duration
	// StatusInterval is how long a connection may go without receiving
	// anything before a Status-Server watchdog probe is sent on it.
	StatusInterval time.Duration
	// IdleTimeout closes connections with nothing in flight for that long;
	// 0 keeps one connection per server open for ever.
	IdleTimeout time.Duration
	// MaxConnsPerServer bounds the connections opened to one server when
	// its identifiers run out.
	MaxConnsPerServer int
	// ReconnectMax caps the reconnect backoff.
	ReconnectMax time.Duration
	// DialTimeout bounds TCP connect plus TLS handshake.
	DialTimeout time.Duration
	// OnStateChange is called, outside any lock, when a server goes up or
	// down. It must not block for long.
	OnStateChange func(server string, up bool)
	Logger        *slog.Logger
	Registerer    prometheus.Registerer
	// Dial opens the TCP connection; nil uses net.Dialer. TLS is layered on
	// top by the client.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Heartbeats registers the pool's loops with the watchdog: each
	// server's dial loop (idle while it has nothing to dial; a dial is
	// bounded by DialTimeout) and each connection's reader (idle while
	// blocked in a read) and writer (beats on every write and tick).
	// Nil: no watchdog.
	Heartbeats proxy.Heartbeats
}

func (c *Config) setDefaults() error {
	if len(c.Servers) == 0 {
		return errors.New("radsec: no servers")
	}
	if c.TLS == nil {
		return errors.New("radsec: no TLS config")
	}
	for _, s := range c.Servers {
		if _, _, err := net.SplitHostPort(s); err != nil {
			return err
		}
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.StatusInterval <= 0 {
		c.StatusInterval = DefaultStatusInterval
	}
	if c.MaxConnsPerServer <= 0 {
		c.MaxConnsPerServer = DefaultMaxConnsPerServer
	}
	if c.ReconnectMax <= 0 {
		c.ReconnectMax = DefaultReconnectMax
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Dial == nil {
		d := &net.Dialer{KeepAlive: 30 * time.Second}
		c.Dial = d.DialContext
	}
	return nil
}

// tlsFor returns the client TLS config for one server.
func tlsFor(base *tls.Config, server string) *tls.Config {
	t := base.Clone()
	if t.ServerName == "" {
		host, _, _ := net.SplitHostPort(server)
		t.ServerName = host
	}
	if t.MinVersion < tls.VersionTLS12 {
		t.MinVersion = tls.VersionTLS12
	}
	t.NextProtos = nil
	return t
}
