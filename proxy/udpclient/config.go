package udpclient

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Mode is how the pool spreads new conversations.
type Mode string

// Modes.
const (
	RoundRobin Mode = "round_robin" // each new conversation to the next server that is up
	Failover   Mode = "failover"    // the first server that is up, in order
)

// ServerConfig is one server of a pool.
type ServerConfig struct {
	Address string // host:port
	Secret  []byte
	// RequireMessageAuthenticator discards replies without a valid one.
	// Replies carrying EAP-Message always need one (RFC 3579 §3.2).
	RequireMessageAuthenticator bool
}

// Config configures a Pool.
type Config struct {
	// Name labels the pool in metrics and logs ("eduroam/auth").
	Name    string
	Servers []ServerConfig
	Mode    Mode
	// Timeout bounds one try at one server; Retries resends within it, at
	// even intervals, byte for byte. Defaults 3s and 2.
	Timeout time.Duration
	Retries int
	// StatusInterval is the Status-Server probe period (default 10s);
	// negative disables probes, and then three request timeouts in a row
	// take a server down for ten timeouts.
	StatusInterval time.Duration
	// StickyFor keeps an EAP conversation's State bound to its server
	// this long after its last round (default 60s).
	StickyFor time.Duration
	// MaxSticky bounds the conversations remembered (default 100000).
	MaxSticky int
	Metrics   *Metrics // shared by the pools of one process; nil: none
	Logger    *slog.Logger
	// Now is the clock for stickiness; time.Now when nil.
	Now func() time.Time
}

func (c *Config) setDefaults() {
	if c.Mode == "" {
		c.Mode = RoundRobin
	}
	if c.Timeout == 0 {
		c.Timeout = 3 * time.Second
	}
	if c.Retries == 0 {
		c.Retries = 2
	}
	if c.StatusInterval == 0 {
		c.StatusInterval = 10 * time.Second
	}
	if c.StickyFor == 0 {
		c.StickyFor = time.Minute
	}
	if c.MaxSticky == 0 {
		c.MaxSticky = 100000
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

func (c *Config) validate() error {
	if len(c.Servers) == 0 {
		return errors.New("udpclient: no servers")
	}
	if c.Mode != RoundRobin && c.Mode != Failover {
		return fmt.Errorf("udpclient: mode %q is not %s or %s", c.Mode, RoundRobin, Failover)
	}
	if c.Timeout < 0 || c.Retries < 0 {
		return errors.New("udpclient: negative timeout or retries")
	}
	for i, s := range c.Servers {
		if len(s.Secret) == 0 {
			return fmt.Errorf("udpclient: server %d (%s) has no secret", i, s.Address)
		}
	}
	return nil
}
