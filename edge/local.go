package edge

import (
	"context"
	"crypto/rsa"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mxedge/mxedge/cache"
	"github.com/mxedge/mxedge/edge/config"
	"github.com/mxedge/mxedge/edge/internal/libcrypto"
	"github.com/mxedge/mxedge/edge/nac"
	"github.com/mxedge/mxedge/edge/nac/eaptls"
	"github.com/mxedge/mxedge/proxy"
)

// cacheFile is the client cache's name under state_dir.
const cacheFile = "cache.db"

// compactMinFree is the share of free pages from which the cache file is
// compacted at start.
const compactMinFree = 0.5

// cacheCheckInterval is how often the whole cache file is read back and
// decoded in the background (and once at start) to find damage before a
// lookup does.
const cacheCheckInterval = 6 * time.Hour

// openCache opens state_dir/cache.db with the survivability TTL and size.
// bbolt holds a file lock: a second mxedge on the same state_dir fails
// here after cache.DefaultLockTimeout instead of hanging. A damaged file
// is moved aside and the cache starts empty (cachefault.go).
func openCache(cfg *config.Config, log *slog.Logger, reg prometheus.Registerer, onFault ...func(cache.Fault)) (*cache.Store, error) {
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("state_dir: %w", err)
	}
	path := filepath.Join(cfg.StateDir, cacheFile)
	var compacted *cache.CompactResult
	if _, err := os.Stat(path); err == nil {
		// Deleted entries and acknowledged events leave free pages that
		// bbolt reuses but never returns; the file is rewritten densely
		// while nothing else has it open. A damaged file is refused here
		// and moved aside by the open below.
		res, err := cache.Compact(path, compactMinFree, cache.DefaultLockTimeout)
		switch {
		case err != nil:
			log.Warn("cache not compacted", "path", path, "err", err)
		case res.Compacted:
			log.Info("cache compacted", "path", path, "before", res.Before, "after", res.After, "took", res.Took)
		}
		if err == nil {
			compacted = &res
		}
	}
	clog := log.With("component", "cache")
	s, err := cache.OpenOrReset(path, cache.Options{
		TTL:           cfg.Survivability.CacheTTL(),
		MaxEntries:    cfg.Survivability.MaxEntries,
		MaxAccounting: cfg.Survivability.AccountingStore,
		Compaction:    compacted,
		CheckInterval: cacheCheckInterval,
		OnFault: func(f cache.Fault) {
			logCacheFault(clog, f)
			for _, h := range onFault {
				h(f)
			}
		},
		Logger:     clog,
		Registerer: reg,
	})
	if err != nil {
		return nil, fmt.Errorf("client cache: %w", err)
	}
	return s, nil
}

// newLocal builds the local NAC from the survivability section: the org CA
// bundle and CRLs that client certificates are checked against, the
// server certificate for local EAP-TLS, and the default VLANs. The caller
// owns the result and Closes it on shutdown (it flushes queued NAC events).
func newLocal(cfg *config.Config, store nac.Store, log *slog.Logger, reg prometheus.Registerer, hb proxy.Heartbeats, onDecision ...func(cache.Event, []cache.Field)) (*nac.Authenticator, error) {
	s := cfg.Survivability
	caPEM, err := os.ReadFile(s.OrgCA)
	if err != nil {
		return nil, fmt.Errorf("survivability.org_ca: %w", err)
	}
	crls := make([][]byte, 0, len(s.CRL))
	for i, f := range s.CRL {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("survivability.crl[%d]: %w", i, err)
		}
		crls = append(crls, b)
	}
	trust, err := eaptls.ParseTrust(caPEM, crls...)
	if err != nil {
		return nil, fmt.Errorf("survivability.org_ca/crl: %w", err)
	}
	if _, err := os.Stat(s.EAPCert); err != nil {
		return nil, fmt.Errorf("survivability.eap_cert: %w", err)
	}
	if _, err := os.Stat(s.EAPKey); err != nil {
		return nil, fmt.Errorf("survivability.eap_key: %w", err)
	}
	cf := &certFile{cert: s.EAPCert, key: s.EAPKey, log: log}
	if _, err := cf.get(); err != nil {
		return nil, fmt.Errorf("survivability.eap_cert/eap_key: %w", err)
	}
	srv, err := eaptls.New(eaptls.Config{
		Certificate:  cf.get,
		Trust:        trust,
		FragmentSize: s.FragmentSize,
		Logger:       log.With("component", "eap-tls"),
	})
	if err != nil {
		return nil, fmt.Errorf("survivability: %w", err)
	}
	a, err := nac.New(nac.Config{
		EAP:              srv,
		Store:            store,
		DefaultMABVLAN:   s.DefaultMABVLAN,
		DefaultDot1XVLAN: s.DefaultDot1XVLAN,
		SessionTimeout:   s.LocalSessionTimeout,
		SessionJitter:    float64(s.LocalSessionJitter),
		FragmentSize:     s.FragmentSize,
		BatchedEvents:    !s.EventsDurable,
		Logger:           log.With("component", "nac"),
		Registerer:       reg,
		OnDecision:       firstHook(onDecision),
		Heartbeats:       hb,
	})
	if err != nil {
		return nil, fmt.Errorf("survivability: %w", err)
	}
	log.Info("local NAC ready", "org_ca", s.OrgCA, "crls", len(crls), "eap_cert", s.EAPCert,
		"default_mab_vlan", s.DefaultMABVLAN, "default_dot1x_vlan", s.DefaultDot1XVLAN)
	// A device the cache does not know gets the default VLAN or nothing:
	// say which, since fail-closed is what an operator notices first.
	for _, d := range []struct{ key, vlan, what string }{
		{"survivability.default_mab_vlan", s.DefaultMABVLAN, "MAB"},
		{"survivability.default_dot1x_vlan", s.DefaultDot1XVLAN, "802.1X"},
	} {
		if d.vlan == "" {
			log.Warn("unknown "+d.what+" clients are rejected while the cloud is unreachable (fail closed); set "+d.key+" to admit them to a VLAN",
				"key", d.key)
		}
	}
	return a, nil
}

// localNAC is the client cache and the local authenticator built on it.
type localNAC struct {
	store *cache.Store
	nac   *nac.Authenticator
	built config.Survivability // what nac was built from

	mu      sync.Mutex
	retired []*nac.Authenticator // replaced, still finishing conversations

	// certsMissing says which certificate file the local NAC waits for
	// (nil when built): a fresh edge gets them from the cloud's sync
	// after registration, which is waiting, not an error.
	certsMissing atomic.Pointer[string]
}

// waitCerts notes err when it is a missing certificate file and logs it
// as waiting; it reports whether it was one.
func (l *localNAC) waitCerts(log *slog.Logger, err error) bool {
	if !errors.Is(err, fs.ErrNotExist) {
		return false
	}
	msg := err.Error()
	if old := l.certsMissing.Swap(&msg); old == nil || *old != msg {
		log.Info("local NAC waits for its certificates: install the files survivability.org_ca, eap_cert and eap_key name, or leave those keys out of the file for the cloud's config to supply them; until then requests go to the cloud only",
			"missing", msg)
	}
	return true
}

// startLocal opens the cache and builds the local NAC when survivability
// may need it, and hands it to the router. Mode "cloud" builds nothing.
// Mode "local" fails without it; in mode "auto" a missing certificate or
// CA (the cloud syncs them, so a fresh edge may not have them yet) only
// leaves the edge cloud-only, loudly.
func (a *App) startLocal(cfg *config.Config) error {
	s := cfg.Survivability
	if !s.Enabled || s.Mode == "cloud" {
		return nil
	}
	store, err := openCache(cfg, a.log, a.reg, a.onCacheFault)
	if err != nil {
		if !cacheOptional(err) {
			return err
		}
		// The cache is a cache: proxying to the cloud needs none of it.
		a.log.Error("client cache unavailable: survivability is OFF, requests only go to the cloud, until the cache opens at a restart",
			"path", filepath.Join(cfg.StateDir, cacheFile), "err", err)
		return nil // the router sends everything to the cloud without a local NAC
	}
	n, err := newLocal(cfg, store, a.log, a.reg, a.heartbeat, a.console.nacDecision)
	if err != nil {
		if s.Mode == "local" {
			store.Close()
			return err
		}
		// Keep the cache open: the cloud sync fills it, and may deliver
		// the very certificates whose absence stops the local NAC now.
		a.local = &localNAC{store: store, built: s}
		if !a.local.waitCerts(a.log, err) {
			a.log.Error("local NAC unavailable: survivability is off until this is fixed", "err", err)
		}
		return nil
	}
	a.local = &localNAC{store: store, nac: n, built: s}
	a.router.setLocal(n)
	return nil
}

// retireAfter is how long a replaced local NAC keeps serving the EAP
// conversations it started before it is closed: their lifetime bound.
const retireAfter = 60 * time.Second

// reloadLocal rebuilds the local NAC on the open cache when the effective
// survivability settings changed (a reload, or the cloud pushing its CA
// and certificates to a fresh edge). The old one finishes its EAP
// conversations and is closed later; a NAC that cannot be built now leaves
// the running one in place.
func (a *App) reloadLocal(cfg *config.Config) {
	s := cfg.Survivability
	if a.local == nil || a.local.store == nil {
		if s.Enabled && s.Mode != "cloud" {
			a.log.Warn("survivability was off at start (mode cloud): turning it on takes a restart")
		}
		return
	}
	if reflect.DeepEqual(s, a.local.built) && a.local.nac != nil {
		return
	}
	if !s.Enabled || s.Mode == "cloud" {
		a.router.setLocal(nil)
		a.local.retire(a.local.nac)
		a.local.nac, a.local.built = nil, s
		a.log.Info("local NAC off")
		return
	}
	n, err := newLocal(cfg, a.local.store, a.log, a.reg, a.heartbeat, a.console.nacDecision)
	if err != nil {
		if a.local.nac != nil || !a.local.waitCerts(a.log, err) {
			a.log.Error("local NAC not rebuilt; keeping the running one", "err", err)
		}
		return
	}
	a.local.certsMissing.Store(nil)
	old := a.local.nac
	a.local.nac, a.local.built = n, s
	a.router.setLocal(n)
	a.local.retire(old)
	a.log.Info("local NAC rebuilt", "mode", s.Mode)
}

// retire closes n once its conversations have run out.
func (l *localNAC) retire(n *nac.Authenticator) {
	if n == nil {
		return
	}
	l.mu.Lock()
	l.retired = append(l.retired, n)
	l.mu.Unlock()
	time.AfterFunc(retireAfter, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		l.mu.Lock()
		defer l.mu.Unlock()
		for i, r := range l.retired {
			if r == n {
				l.retired = append(l.retired[:i], l.retired[i+1:]...)
				_ = n.Close(ctx)
				return
			}
		}
	})
}

// close flushes queued NAC events and closes the cache.
func (l *localNAC) close(ctx context.Context) {
	if l == nil {
		return
	}
	if l.nac != nil {
		_ = l.nac.Close(ctx)
	}
	l.mu.Lock()
	for _, r := range l.retired {
		_ = r.Close(ctx) // flush their queued events before the store closes
	}
	l.retired = nil
	l.mu.Unlock()
	_ = l.store.Close()
}

// certFile serves the local EAP server certificate and picks up a new one
// (written by the cloud sync or an operator) without a restart: the files'
// modification times are checked at most once a second, and a pair that
// fails to load keeps the previous certificate in service.
type certFile struct {
	cert, key string
	log       *slog.Logger

	mu      sync.Mutex
	cur     *tls.Certificate
	mod     [2]time.Time
	checked time.Time
}

func (c *certFile) get() (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if c.cur != nil && now.Sub(c.checked) < time.Second {
		return c.cur, nil
	}
	c.checked = now
	var mod [2]time.Time
	for i, f := range []string{c.cert, c.key} {
		st, err := os.Stat(f)
		if err != nil {
			if c.cur != nil {
				return c.cur, nil
			}
			return nil, err
		}
		mod[i] = st.ModTime()
	}
	if c.cur != nil && mod == c.mod {
		return c.cur, nil
	}
	cert, err := tls.LoadX509KeyPair(c.cert, c.key)
	if err != nil {
		if c.cur != nil {
			c.log.Error("new EAP server certificate not loaded; keeping the current one", "eap_cert", c.cert, "err", err)
			return c.cur, nil
		}
		return nil, err
	}
	if c.cur != nil {
		c.log.Info("EAP server certificate reloaded", "eap_cert", c.cert)
	}
	if k, ok := cert.PrivateKey.(*rsa.PrivateKey); ok {
		// The RSA signature is half of a local EAP-TLS authentication's
		// CPU; libcrypto makes it three times cheaper than Go.
		if s, err := libcrypto.NewSigner(k); err == nil {
			v, _ := libcrypto.Load()
			cert.PrivateKey = s
			c.log.Info("EAP server RSA key signs through libcrypto", "eap_cert", c.cert, "openssl", v)
		} else {
			c.log.Info("EAP server RSA key signs in Go", "eap_cert", c.cert, "reason", err)
		}
	}
	c.cur, c.mod = &cert, mod
	return c.cur, nil
}
