package radsec

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mxedge/mxedge/proxy"
)

// ServerConfig configures a Server.
type ServerConfig struct {
	// Handler serves requests from connections whose Peer has none.
	Handler proxy.Handler
	// Identify names the peer of a connection from its verified TLS state,
	// after the handshake and before any request is read. An error closes
	// the connection (counted as "refused"). Nil names every peer by the
	// certificate's CN as a "device".
	Identify func(tls.ConnectionState) (Peer, error)
	// MaxInFlight bounds concurrent handler calls per connection; reading
	// stops while it is reached.
	MaxInFlight int
	// MaxConns bounds open connections, handshakes included; 0 is no bound.
	// Past it a new connection is closed as soon as it is accepted.
	MaxConns int
	// MaxConnsPerSource bounds open connections from one IP address,
	// handshakes included; 0 is no bound. It keeps one misbehaving or
	// hostile address from taking the whole of MaxConns.
	MaxConnsPerSource int
	// IdleTimeout closes a connection that has sent nothing for that long;
	// 0 never does. bis §3.10 calls 30–60 s unreasonable; 10–15 min is usual.
	IdleTimeout      time.Duration
	WriteTimeout     time.Duration
	HandshakeTimeout time.Duration
	Logger           *slog.Logger
	Registerer       prometheus.Registerer
}

// Peer is who holds a connection, as ServerConfig.Identify decided from
// its certificate.
type Peer struct {
	// Client is what every request on the connection carries: its name
	// and site reach the cache, events and logs; Secret must be "radsec".
	Client *proxy.Client
	// Kind labels the connection in logs and metrics: "device", "cloud".
	Kind string
	// Handler, when set, serves this connection instead of
	// ServerConfig.Handler (the cloud's requests are not a device's).
	Handler proxy.Handler
}

func (c *ServerConfig) setDefaults() error {
	if c.Handler == nil {
		return errors.New("radsec: server without handler")
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.MaxConns < 0 || c.MaxConnsPerSource < 0 {
		return errors.New("radsec: negative connection limit")
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Identify == nil {
		c.Identify = identifyByCN
	}
	return nil
}

// identifyByCN is the default Identify: the leaf's CN names a device.
func identifyByCN(st tls.ConnectionState) (Peer, error) {
	return Peer{Client: &proxy.Client{Name: st.PeerCertificates[0].Subject.CommonName, Secret: secret, Vendor: "generic"}, Kind: "device"}, nil
}

// Secret is the RADIUS shared secret inside RadSec (bis §3.1), for
// Identify functions that build a proxy.Client.
func Secret() []byte { return []byte("radsec") }
