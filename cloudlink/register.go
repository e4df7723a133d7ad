package cloudlink

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Files Register writes under the state directory. RegFile is written last:
// its presence means the registration is complete.
const (
	RegFile  = "registration.json"
	CertFile = "edge.crt"
	KeyFile  = "edge.key"
	CAFile   = "cloud-ca.pem"
)

// Registration is the edge's cloud identity, as kept in RegFile.
type Registration struct {
	EdgeID        string    `json:"edge_id"`
	OrgID         string    `json:"org_id"`
	SiteID        string    `json:"site_id"`
	APIURL        string    `json:"api_url"`
	RadSecServers []string  `json:"radsec_servers"`
	CertFile      string    `json:"cert_file"`
	KeyFile       string    `json:"key_file"`
	CAFile        string    `json:"ca_file"`
	RegisteredAt  time.Time `json:"registered_at"`

	// Path is where this registration was read from or written to.
	Path string `json:"-"`
}

// RegisterOptions tune Register. The zero value is usable.
type RegisterOptions struct {
	// RootCAs verify the API server during registration; nil means the
	// system roots (SSL_CERT_FILE is honoured), or CAFile if set.
	RootCAs *x509.CertPool
	// CAFile is a PEM file of extra roots, for a lab cloud.
	CAFile   string
	ProxyURL string
	Timeout  time.Duration
	Version  string
	Now      func() time.Time
}

// Register enrols this edge with the cloud at apiURL using a one-time
// code: it creates (or reuses) an ECDSA P-256 key under stateDir, sends a
// CSR, and writes the certificate, the cloud's CA bundle and RegFile.
//
// Running it again with the same code is safe: the key under stateDir is
// reused, and the cloud accepts a used code again only from the key it
// was first used with, returning the same identity. A wrong code, or a
// code used by another key, fails with ErrInvalidCode or ErrCodeUsed.
func Register(ctx context.Context, apiURL, code, stateDir string, opts RegisterOptions) (*Registration, error) {
	code = strings.TrimSpace(code)
	if code == "" {
		return nil, errors.New("cloudlink: empty registration code")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if err := os.MkdirAll(stateDir, 0o750); err != nil {
		return nil, fmt.Errorf("cloudlink: state dir: %w", err)
	}
	roots := opts.RootCAs
	if roots == nil && opts.CAFile != "" {
		var err error
		if roots, err = poolWithFile(opts.CAFile); err != nil {
			return nil, err
		}
	}
	key, err := loadOrCreateKey(filepath.Join(stateDir, KeyFile))
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "mxedge " + host},
	}, key)
	if err != nil {
		return nil, fmt.Errorf("cloudlink: csr: %w", err)
	}
	c, err := NewClient(apiURL, ClientOptions{RootCAs: roots, ProxyURL: opts.ProxyURL, Timeout: opts.Timeout})
	if err != nil {
		return nil, err
	}
	defer c.CloseIdleConnections()
	resp, err := c.Register(ctx, RegisterRequest{
		Code:     code,
		CSR:      string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr})),
		Hostname: host,
		Version:  opts.Version,
	})
	switch {
	case errors.Is(err, ErrInvalidCode):
		return nil, fmt.Errorf("registration code %q is not valid (mistyped or expired?): %w", code, err)
	case errors.Is(err, ErrCodeUsed):
		return nil, fmt.Errorf("registration code %q was already used by another edge; ask for a new one: %w", code, err)
	case err != nil:
		return nil, fmt.Errorf("registration failed: %w", err)
	}
	if err := checkIssued(resp, key); err != nil {
		return nil, err
	}
	if resp.APIURL == "" {
		resp.APIURL = apiURL
	}
	reg := &Registration{
		EdgeID:        resp.EdgeID,
		OrgID:         resp.OrgID,
		SiteID:        resp.SiteID,
		APIURL:        resp.APIURL,
		RadSecServers: resp.RadSecServers,
		CertFile:      filepath.Join(stateDir, CertFile),
		KeyFile:       filepath.Join(stateDir, KeyFile),
		CAFile:        filepath.Join(stateDir, CAFile),
		RegisteredAt:  opts.Now().UTC(),
		Path:          filepath.Join(stateDir, RegFile),
	}
	if err := writeFileAtomic(reg.CertFile, []byte(resp.Certificate), 0o644); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(reg.CAFile, []byte(resp.CABundle), 0o644); err != nil {
		return nil, err
	}
	b, _ := json.MarshalIndent(reg, "", "  ")
	if err := writeFileAtomic(reg.Path, append(b, '\n'), 0o640); err != nil {
		return nil, err
	}
	return reg, nil
}

// checkIssued refuses an answer that would leave a broken identity on
// disk: a certificate for another key, or no CA to trust.
func checkIssued(resp *RegisterResponse, key *ecdsa.PrivateKey) error {
	if resp.EdgeID == "" {
		return errors.New("registration failed: the cloud returned no edge id")
	}
	blk, _ := pem.Decode([]byte(resp.Certificate))
	if blk == nil {
		return errors.New("registration failed: the cloud returned no certificate")
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return fmt.Errorf("registration failed: issued certificate: %w", err)
	}
	if pk, ok := cert.PublicKey.(*ecdsa.PublicKey); !ok || !pk.Equal(&key.PublicKey) {
		return errors.New("registration failed: the issued certificate is not for our key")
	}
	if !x509.NewCertPool().AppendCertsFromPEM([]byte(resp.CABundle)) {
		return errors.New("registration failed: the cloud returned no CA bundle")
	}
	return nil
}

// LoadRegistration reads RegFile under stateDir. A missing file is
// ErrNotRegistered.
func LoadRegistration(stateDir string) (*Registration, error) {
	path := filepath.Join(stateDir, RegFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotRegistered
	}
	if err != nil {
		return nil, fmt.Errorf("cloudlink: %w", err)
	}
	var reg Registration
	if err := json.Unmarshal(b, &reg); err != nil {
		return nil, fmt.Errorf("cloudlink: %s: %w", path, err)
	}
	if reg.EdgeID == "" || reg.APIURL == "" {
		return nil, fmt.Errorf("cloudlink: %s: no edge id or api url", path)
	}
	// Files move with the state directory.
	for _, p := range []*string{&reg.CertFile, &reg.KeyFile, &reg.CAFile} {
		if !filepath.IsAbs(*p) {
			*p = filepath.Join(stateDir, *p)
		}
	}
	reg.Path = path
	return &reg, nil
}

// TLS returns the registration certificate and a pool of the system roots
// plus the cloud's CA bundle.
func (r *Registration) TLS() (tls.Certificate, *x509.CertPool, error) {
	cert, err := tls.LoadX509KeyPair(r.CertFile, r.KeyFile)
	if err != nil {
		return cert, nil, fmt.Errorf("cloudlink: registration certificate: %w", err)
	}
	pool, err := poolWithFile(r.CAFile)
	return cert, pool, err
}

// Client returns an API client authenticating with the registration
// certificate. opts.Certificate and opts.RootCAs are filled in.
func (r *Registration) Client(opts ClientOptions) (*Client, error) {
	cert, pool, err := r.TLS()
	if err != nil {
		return nil, err
	}
	opts.Certificate = &cert
	opts.RootCAs = pool
	return NewClient(r.APIURL, opts)
}

func poolWithFile(path string) (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cloudlink: CA file: %w", err)
	}
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("cloudlink: %s: no PEM certificates", path)
	}
	return pool, nil
}

func loadOrCreateKey(path string) (*ecdsa.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		blk, _ := pem.Decode(b)
		if blk == nil {
			return nil, fmt.Errorf("cloudlink: %s: not PEM", path)
		}
		k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("cloudlink: %s: %w", path, err)
		}
		ek, ok := k.(*ecdsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("cloudlink: %s: not an ECDSA key", path)
		}
		return ek, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("cloudlink: %w", err)
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, err
	}
	return k, nil
}

// writeFileAtomic replaces path with data so that a crash leaves the old
// or the new file, never half of one.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("cloudlink: %w", err)
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("cloudlink: %w", err)
	}
	return nil
}
