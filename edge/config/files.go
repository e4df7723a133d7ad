package config

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"
)

// CheckFiles is the second half of validation: the files the config names.
// `mxedge check-config` and `mxedge run` both call it after Load, so that
// whatever run would refuse, check-config reports first, as FILE: KEY:
// reason. A file must be present, readable by the account the daemon runs
// as, parseable, a key must match its certificate and a certificate must
// be valid now.
//
// What run refuses comes back as Errors; what run survives in a degraded
// way (survivability in mode auto without its certificates: the cloud may
// still deliver them) is added to Warnings.

// Account is who must be able to read the files.
type Account struct {
	Name string
	UID  int
	GIDs []int // primary group first
}

// LookupAccount returns the account called name, with its groups.
func LookupAccount(name string) (*Account, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, err
	}
	a := &Account{Name: name}
	if a.UID, err = strconv.Atoi(u.Uid); err != nil {
		return nil, fmt.Errorf("user %s: uid %q", name, u.Uid)
	}
	gids, err := u.GroupIds()
	if err != nil {
		gids = []string{u.Gid}
	}
	for _, g := range append([]string{u.Gid}, gids...) {
		if n, err := strconv.Atoi(g); err == nil && !slices.Contains(a.GIDs, n) {
			a.GIDs = append(a.GIDs, n)
		}
	}
	return a, nil
}

// FileCheck are CheckFiles' options.
type FileCheck struct {
	// As is the account the daemon runs as; nil checks that this process
	// can open the files (what run does).
	As *Account
	// Now is when certificates must be valid; zero is time.Now().
	Now time.Time
}

// fileSpec is one file a key names and what it must contain.
type fileSpec struct {
	key, path string
	kind      fileKind
	keyKey    string // for kindCertKey: the key of the private key, keyPath its file
	keyPath   string
	warnOnly  string // non-empty: a problem is a warning, with this consequence
}

type fileKind int

const (
	kindCerts   fileKind = iota // one or more PEM certificates (a CA bundle)
	kindCRL                     // a CRL, PEM or DER
	kindCertKey                 // a certificate chain and its private key
)

// CheckFiles checks every file the configuration names, for the parts
// that use them. It returns Errors (nil when none) and adds warnings to
// c.Warnings.
func (c *Config) CheckFiles(opts FileCheck) error {
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	p := newProblems(c.name, nil)
	for _, f := range c.files() {
		if reason := checkFile(f, opts); reason != nil {
			key := f.key
			if f.kind == kindCertKey && reason.onKey {
				key = f.keyKey
			}
			if f.warnOnly != "" {
				p.warn(key, reason.text+"; "+f.warnOnly)
			} else {
				p.add(key, reason.text)
			}
		}
	}
	c.warnings = append(c.warnings, p.warnings...)
	if len(p.errs) > 0 {
		return p.errs
	}
	return nil
}

// files lists the files in use with this configuration.
func (c *Config) files() []fileSpec {
	var list []fileSpec
	if s := c.Survivability; s.Enabled && s.Mode != "cloud" {
		warn := ""
		if s.Mode == "auto" {
			// Start keeps the edge up cloud-only: the cloud's config may
			// deliver the CA and certificates of a fresh edge.
			warn = "survivability stays off until this is fixed (in mode local this is an error)"
		}
		list = append(list, fileSpec{key: "survivability.org_ca", path: s.OrgCA, kind: kindCerts, warnOnly: warn})
		for i, f := range s.CRL {
			list = append(list, fileSpec{key: fmt.Sprintf("survivability.crl[%d]", i), path: f, kind: kindCRL, warnOnly: warn})
		}
		list = append(list, fileSpec{key: "survivability.eap_cert", path: s.EAPCert, kind: kindCertKey,
			keyKey: "survivability.eap_key", keyPath: s.EAPKey, warnOnly: warn})
	}
	if r := c.Cloud.RadSec; r.Cert != "" && r.Key != "" {
		list = append(list, fileSpec{key: "cloud.radsec.cert", path: r.Cert, kind: kindCertKey, keyKey: "cloud.radsec.key", keyPath: r.Key})
	}
	if r := c.Cloud.RadSec; r.CA != "" {
		if _, err := os.Stat(r.CA); err == nil || !errors.Is(err, fs.ErrNotExist) {
			// Absent, the registration's CA is used (a fresh install).
			list = append(list, fileSpec{key: "cloud.radsec.ca", path: r.CA, kind: kindCerts})
		}
	}
	if c.Metrics.HTTPS && c.Metrics.Listen != "" {
		cert, key := c.MetricsTLS()
		ck, kk := "metrics.tls_cert", "metrics.tls_key"
		if c.Metrics.TLSCert == "" {
			ck, kk = "radsec.cert", "radsec.key"
		}
		list = append(list, fileSpec{key: ck, path: cert, kind: kindCertKey, keyKey: kk, keyPath: key})
	}
	return list
}

// fileReason is why a file fails; onKey when it is the private key's.
type fileReason struct {
	text  string
	onKey bool
}

func checkFile(f fileSpec, opts FileCheck) *fileReason {
	data, why := readAs(f.path, opts.As)
	if why != "" {
		return &fileReason{text: why}
	}
	switch f.kind {
	case kindCerts:
		certs, err := parseCerts(data)
		if err != nil {
			return &fileReason{text: fmt.Sprintf("%s: %v", f.path, err)}
		}
		for _, c := range certs {
			if why := validity(c, opts.Now); why != "" {
				return &fileReason{text: fmt.Sprintf("%s: certificate %q %s", f.path, c.Subject.CommonName, why)}
			}
		}
	case kindCRL:
		der := data
		if b, _ := pem.Decode(data); b != nil {
			der = b.Bytes
		}
		if _, err := x509.ParseRevocationList(der); err != nil {
			return &fileReason{text: fmt.Sprintf("%s: not a CRL: %v", f.path, err)}
		}
	case kindCertKey:
		if _, err := parseCerts(data); err != nil {
			return &fileReason{text: fmt.Sprintf("%s: %v", f.path, err)}
		}
		keyData, why := readAs(f.keyPath, opts.As)
		if why != "" {
			return &fileReason{text: why, onKey: true}
		}
		pair, err := tls.X509KeyPair(data, keyData)
		if err != nil {
			return &fileReason{text: fmt.Sprintf("%s with %s: %v", f.path, f.keyPath, err), onKey: true}
		}
		if why := validity(pair.Leaf, opts.Now); why != "" {
			return &fileReason{text: fmt.Sprintf("%s: certificate %q %s", f.path, pair.Leaf.Subject.CommonName, why)}
		}
	}
	return nil
}

func parseCerts(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("bad certificate: %v", err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificate in it")
	}
	return certs, nil
}

func validity(c *x509.Certificate, now time.Time) string {
	switch {
	case now.After(c.NotAfter):
		return "expired on " + c.NotAfter.UTC().Format(time.RFC3339)
	case now.Before(c.NotBefore):
		return "is not valid before " + c.NotBefore.UTC().Format(time.RFC3339)
	}
	return ""
}

// readAs reads path as this process and, when as is set, checks that the
// account could read it too: owner, group and mode of the file and search
// permission on every directory above it.
func readAs(path string, as *Account) ([]byte, string) {
	if path == "" {
		return nil, "is required"
	}
	data, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Sprintf("%s: %v", path, err)
	}
	if as == nil || as.UID == 0 {
		return data, ""
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return data, ""
	}
	if why := accessible(abs, as, 4); why != "" {
		return nil, why
	}
	for dir := filepath.Dir(abs); ; dir = filepath.Dir(dir) {
		if why := accessible(dir, as, 1); why != "" {
			return nil, why
		}
		if dir == "/" || dir == "." {
			break
		}
	}
	return data, ""
}

// accessible checks one permission bit (4 read, 1 search) of path for as.
func accessible(path string, as *Account, bit os.FileMode) string {
	fi, err := os.Stat(path)
	if err != nil {
		return ""
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return ""
	}
	mode := fi.Mode().Perm()
	var allowed bool
	switch {
	case int(st.Uid) == as.UID:
		allowed = mode&(bit<<6) != 0
	case slices.Contains(as.GIDs, int(st.Gid)):
		allowed = mode&(bit<<3) != 0
	default:
		allowed = mode&bit != 0
	}
	if allowed {
		return ""
	}
	owner := ownerName(st)
	if bit == 1 {
		return fmt.Sprintf("%s: directory not searchable by user %s (owner %s, mode %04o)", path, as.Name, owner, mode)
	}
	return fmt.Sprintf("%s: not readable by user %s (owner %s, mode %04o): chgrp %s %s && chmod g+r %s",
		path, as.Name, owner, mode, as.Name, path, path)
}

func ownerName(st *syscall.Stat_t) string {
	u, g := strconv.Itoa(int(st.Uid)), strconv.Itoa(int(st.Gid))
	if x, err := user.LookupId(u); err == nil {
		u = x.Username
	}
	if x, err := user.LookupGroupId(g); err == nil {
		g = x.Name
	}
	return u + ":" + g
}
