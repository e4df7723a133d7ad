package eaptls

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"time"
)

// Defaults.
const (
	DefaultFragmentSize = 1020
	DefaultMaxRounds    = 50
	DefaultMaxBytes     = 256 << 10
	DefaultLifetime     = 60 * time.Second
	// MaxMessageLen caps the TLS Message Length a peer may announce and the
	// size of a reassembled peer message.
	MaxMessageLen = 64 << 10
	// minFragmentSize keeps a misconfigured Framed-MTU from turning one
	// flight into hundreds of rounds.
	minFragmentSize = 64
)

// Config configures a Server.
type Config struct {
	// Certificate returns the current server certificate; it is called
	// once per handshake so a rotated certificate takes effect at once.
	// The certificate should carry the serverAuth EKU (Windows insists).
	Certificate func() (*tls.Certificate, error)
	// Trust is the initial client CA material; SetTrust replaces it.
	Trust *Trust
	// FragmentSize is the default maximum of TLS bytes per EAP-TLS
	// packet; the EAP packet is at most FragmentSize+10 bytes. Sessions
	// may override it (derive it from Framed-MTU).
	FragmentSize int
	// MaxRounds bounds EAP round trips per conversation.
	MaxRounds int
	// MaxBytes bounds the EAP bytes received per conversation.
	MaxBytes int
	// Lifetime bounds one conversation from its first packet.
	Lifetime time.Duration
	// MinVersion and MaxVersion default to TLS 1.2 and TLS 1.3; nothing
	// below TLS 1.2 is accepted.
	MinVersion, MaxVersion uint16
	// CipherSuites for TLS 1.2; nil keeps crypto/tls defaults.
	CipherSuites []uint16
	// Authorize, if set, runs after the chain verified, inside the
	// handshake, so a refusal still reaches the peer as a TLS alert and
	// no EAP-Success (or RFC 9190 commitment) is ever sent. crypto/tls
	// calls it before checking the peer's CertificateVerify, so it must
	// only decide, not act (emit events from the Result instead).
	Authorize func(chain []*x509.Certificate) error
	// Now is the clock for certificate dates and lifetimes.
	Now func() time.Time
	// Logger receives one line per finished conversation at debug level.
	Logger *slog.Logger
}

func (c *Config) setDefaults() error {
	if c.Certificate == nil {
		return errors.New("eaptls: Config.Certificate is required")
	}
	if c.FragmentSize == 0 {
		c.FragmentSize = DefaultFragmentSize
	}
	if c.FragmentSize < minFragmentSize || c.FragmentSize > MaxMessageLen {
		return errors.New("eaptls: FragmentSize out of range")
	}
	if c.MaxRounds == 0 {
		c.MaxRounds = DefaultMaxRounds
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	if c.Lifetime == 0 {
		c.Lifetime = DefaultLifetime
	}
	if c.MinVersion == 0 {
		c.MinVersion = tls.VersionTLS12
	}
	if c.MaxVersion == 0 {
		c.MaxVersion = tls.VersionTLS13
	}
	if c.MinVersion < tls.VersionTLS12 || c.MaxVersion < c.MinVersion {
		return errors.New("eaptls: TLS versions out of range (minimum TLS 1.2)")
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}
