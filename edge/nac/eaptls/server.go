package eaptls

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
)

// Server holds what all conversations share: configuration, the server
// certificate getter and the current Trust.
type Server struct {
	cfg   Config
	trust atomic.Pointer[Trust]
}

// New returns a Server.
func New(cfg Config) (*Server, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg}
	if cfg.Trust != nil {
		s.trust.Store(cfg.Trust)
	}
	return s, nil
}

// SetTrust replaces the client CA material for conversations whose
// certificate check has not run yet.
func (s *Server) SetTrust(t *Trust) { s.trust.Store(t) }

// NewSession starts a conversation. fragmentSize is the TLS payload per
// EAP-TLS packet (Framed-MTU minus EAP/EAPOL overhead); 0 means the
// configured default.
func (s *Server) NewSession(fragmentSize int) *Session {
	if fragmentSize <= 0 {
		fragmentSize = s.cfg.FragmentSize
	}
	fragmentSize = max(minFragmentSize, min(fragmentSize, MaxMessageLen))
	return &Session{srv: s, frag: fragmentSize, created: s.cfg.Now()}
}

const extensionEMS = 23 // extended_master_secret, RFC 7627

// tlsConfig builds the per-conversation config; its callbacks write the
// verified chain into hs.
func (s *Server) tlsConfig(hs *handshakeInfo) *tls.Config {
	c := &s.cfg
	return &tls.Config{
		MinVersion:             c.MinVersion,
		MaxVersion:             c.MaxVersion,
		CipherSuites:           c.CipherSuites,
		SessionTicketsDisabled: true,
		// RequestClientCert rather than RequireAndVerifyClientCert: the
		// chain is verified in VerifyConnection with the injected clock,
		// configured intermediates, CRLs and a distinct reason per
		// failure. A missing certificate is refused there too.
		ClientAuth: tls.RequestClientCert,
		Time:       c.Now,
		GetConfigForClient: func(chi *tls.ClientHelloInfo) (*tls.Config, error) {
			tls13 := c.MaxVersion >= tls.VersionTLS13 && slices.Contains(chi.SupportedVersions, tls.VersionTLS13)
			if !tls13 && !slices.Contains(chi.Extensions, extensionEMS) {
				// Go ≥1.22 refuses to export keys from TLS 1.2 without
				// EMS; failing here gives the peer an alert and us a
				// clear reason instead of a handshake that cannot key.
				return nil, withReason(ReasonNoExtendedMasterSecret,
					errors.New("peer offers TLS 1.2 without Extended Master Secret (RFC 7627)"))
			}
			return nil, nil
		},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			cert, err := c.Certificate()
			if err == nil && cert == nil {
				err = errors.New("no server certificate")
			}
			if err != nil {
				return nil, withReason(ReasonServerError, fmt.Errorf("server certificate: %w", err))
			}
			return cert, nil
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			t := s.trust.Load()
			if t == nil {
				return withReason(ReasonServerError, errors.New("no client CA loaded"))
			}
			chain, err := t.Verify(cs.PeerCertificates, c.Now())
			if err != nil {
				return err
			}
			if c.Authorize != nil {
				if err := c.Authorize(chain); err != nil {
					return withReason(ReasonNotAuthorized, err)
				}
			}
			hs.chain = chain
			return nil
		},
	}
}

// handshakeInfo is written by the handshake goroutine's callbacks before
// the engine publishes hsDone under its mutex, and read after.
type handshakeInfo struct {
	chain []*x509.Certificate
}
