package eaptls

import "errors"

// Reason says why a conversation ended. The lead maps these to NAC events
// ("NAC Client Certificate Expired", "NAC Client Cert Revoked", ...).
type Reason string

// Reasons. ReasonNone accompanies a success.
const (
	ReasonNone                   Reason = ""
	ReasonCertExpired            Reason = "cert_expired"
	ReasonCertNotYetValid        Reason = "cert_not_yet_valid"
	ReasonCertRevoked            Reason = "cert_revoked"
	ReasonCertUntrustedCA        Reason = "cert_untrusted_ca"
	ReasonCertValidationFailed   Reason = "cert_validation_failed" // wrong EKU, bad signature, other x509 errors
	ReasonNoClientCert           Reason = "no_client_cert"
	ReasonNotAuthorized          Reason = "not_authorized" // Config.Authorize refused
	ReasonPasswordMethodRefused  Reason = "password_method_refused"
	ReasonNoExtendedMasterSecret Reason = "no_extended_master_secret"
	ReasonTLSFailed              Reason = "tls_handshake_failed"
	ReasonProtocolError          Reason = "protocol_error"
	ReasonLimitExceeded          Reason = "limit_exceeded" // rounds, bytes or TLS Message Length
	ReasonTimeout                Reason = "timeout"
	ReasonServerError            Reason = "server_error" // no server certificate, trust not loaded
)

// CertificateReason reports whether r is about the client certificate.
func (r Reason) CertificateReason() bool {
	switch r {
	case ReasonCertExpired, ReasonCertNotYetValid, ReasonCertRevoked, ReasonCertUntrustedCA,
		ReasonCertValidationFailed, ReasonNoClientCert:
		return true
	}
	return false
}

// reasonError carries a Reason out of crypto/tls callbacks, which only
// return errors.
type reasonError struct {
	reason Reason
	err    error
}

func (e *reasonError) Error() string { return string(e.reason) + ": " + e.err.Error() }
func (e *reasonError) Unwrap() error { return e.err }

func withReason(r Reason, err error) error { return &reasonError{reason: r, err: err} }

// reasonOf extracts the Reason from a handshake error.
func reasonOf(err error, def Reason) Reason {
	var re *reasonError
	if errors.As(err, &re) {
		return re.reason
	}
	return def
}
