package proxy

import (
	"context"
	"log/slog"
	"net/netip"
	"time"

	"github.com/mxedge/mxedge/proxy/packet"
)

// Client is a configured RADIUS client: a switch, controller, firewall or
// roaming operator that sends us plain RADIUS.
type Client struct {
	Name   string
	Prefix netip.Prefix
	Secret []byte
	Vendor string
	Site   string
	// RequireMessageAuthenticator drops Access-Requests that lack a valid
	// Message-Authenticator (BlastRADIUS, CVE-2024-3596).
	RequireMessageAuthenticator bool
	// LimitProxyState drops Access-Requests that carry Proxy-State but no
	// Message-Authenticator (draft-ietf-radext-deprecating-radius).
	LimitProxyState bool
	CoAPort         int
}

// LogValue keeps the secret out of logs.
func (c *Client) LogValue() slog.Value {
	return slog.GroupValue(slog.String("name", c.Name), slog.String("prefix", c.Prefix.String()))
}

// Request is one checked request from a client. Packet (its Raw bytes and
// every attribute value) aliases a buffer owned by the server for the
// duration of the handler call; a handler that keeps any of it longer must
// copy.
type Request struct {
	Packet   *packet.Packet
	Client   *Client
	Source   netip.AddrPort
	Local    netip.AddrPort
	Received time.Time
	// HasMessageAuthenticator is true when the request carried a valid one.
	HasMessageAuthenticator bool
}

// Handler answers a request. It returns the encoded reply for the client,
// already signed with the client's secret, or nil to send nothing (a drop
// or a timeout upstream); the reason is returned for counting and logging.
type Handler interface {
	ServeRADIUS(ctx context.Context, req *Request) (reply []byte, outcome Outcome)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, req *Request) ([]byte, Outcome)

// ServeRADIUS calls f.
func (f HandlerFunc) ServeRADIUS(ctx context.Context, req *Request) ([]byte, Outcome) {
	return f(ctx, req)
}

// Outcome says what became of a request, for metrics and logs. It is a
// short label value such as "answered", "upstream_timeout".
type Outcome string

// Outcomes shared by the servers and the forwarder.
const (
	OutcomeAnswered        Outcome = "answered"
	OutcomeUpstreamTimeout Outcome = "upstream_timeout"
	OutcomeUpstreamError   Outcome = "upstream_error"
	OutcomeNoUpstream      Outcome = "no_upstream"
	OutcomeBadReply        Outcome = "bad_reply"
	OutcomeDropped         Outcome = "dropped"
	OutcomeLocal           Outcome = "local"
	OutcomePanic           Outcome = "panic"
)
