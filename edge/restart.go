package edge

import (
	"reflect"
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mxedge/mxedge/edge/config"
)

// Reload applies what can change live (clients, cloud RadSec, federation,
// survivability's NAC and health settings); the settings below are read
// once, at start. A reload that changes one of them must not look like a
// plain success: the keys are named in the log, in `mxedge status` and in
// mxedge_config_restart_pending, until a restart applies them.

// restartOnly are the settings that take effect only at start, with how
// to read each from a config.
var restartOnly = []struct {
	key string
	get func(*config.Config) any
}{
	{"state_dir", func(c *config.Config) any { return c.StateDir }},
	{"log.level", func(c *config.Config) any { return c.Log.Level }},
	{"log.format", func(c *config.Config) any { return c.Log.Format }},
	{"metrics.listen", func(c *config.Config) any { return c.Metrics.Listen }},
	{"metrics.console", func(c *config.Config) any { return c.Metrics.Console }},
	{"metrics.token_file", func(c *config.Config) any { return c.Metrics.TokenFile }},
	{"metrics.https", func(c *config.Config) any { return c.Metrics.HTTPS }},
	{"metrics.tls_cert", func(c *config.Config) any { return c.Metrics.TLSCert }},
	{"metrics.tls_key", func(c *config.Config) any { return c.Metrics.TLSKey }},
	{"radius.auth_listen", func(c *config.Config) any { return c.RADIUS.AuthListen }},
	{"radius.acct_listen", func(c *config.Config) any { return c.RADIUS.AcctListen }},
	{"radius.duplicate_window", func(c *config.Config) any { return c.RADIUS.DuplicateWindow }},
	{"cloud.api_url", func(c *config.Config) any { return c.Cloud.APIURL }},
	{"cloud.proxy_url", func(c *config.Config) any { return c.Cloud.ProxyURL }},
	{"cloud.sync_interval", func(c *config.Config) any { return c.Cloud.SyncInterval }},
	{"cloud.learn_from_accepts", func(c *config.Config) any { return c.Cloud.LearnFromAccepts }},
	{"cloud.caching_site_ids", func(c *config.Config) any { return c.Cloud.CachingSiteIDs }},
	{"survivability.cache_ttl_days", func(c *config.Config) any { return c.Survivability.CacheTTLDays }},
	{"survivability.max_entries", func(c *config.Config) any { return c.Survivability.MaxEntries }},
	{"survivability.accounting_store", func(c *config.Config) any { return c.Survivability.AccountingStore }},
	// The cache opens only at start: survivability turned on (enabled,
	// or a mode other than cloud) when it started off needs a restart;
	// turning it off is live.
	{"survivability.enabled", func(c *config.Config) any { return localWanted(c) }},
}

func localWanted(c *config.Config) bool {
	return c.Survivability.Enabled && c.Survivability.Mode != "cloud"
}

// restartState is what the running daemon started with, and the keys a
// reload changed since.
type restartState struct {
	mu      sync.Mutex
	started *config.Config
	pending []string

	gauge prometheus.Gauge
	keys  *prometheus.GaugeVec
}

func (a *App) registerRestartMetrics() {
	a.restart.gauge = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "mxedge_config_restart_pending",
		Help: "1 when the last reload was applied but changed settings that take effect only after a restart.",
	})
	a.restart.keys = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "mxedge_config_restart_pending_setting",
		Help: "1 for each setting changed by a reload that takes effect only after a restart.",
	}, []string{"key"})
	a.reg.MustRegister(a.restart.gauge, a.restart.keys)
	a.restart.zeroKeys()
}

// zeroKeys shows every restart-only setting at 0, so that a scrape lists
// them from start and a reload that applies them all shows zeros, not
// nothing.
func (r *restartState) zeroKeys() {
	r.keys.Reset()
	for _, k := range restartOnly {
		r.keys.WithLabelValues(k.key).Set(0)
	}
}

// restartKeys lists the restart-only settings that differ between the
// config the daemon started with and next.
func restartKeys(started, next *config.Config) []string {
	var keys []string
	for _, k := range restartOnly {
		was, now := k.get(started), k.get(next)
		if k.key == "survivability.enabled" {
			if was == false && now == true {
				keys = append(keys, k.key)
			}
			continue
		}
		if !reflect.DeepEqual(was, now) {
			keys = append(keys, k.key)
		}
	}
	return keys
}

// noteRestart records the restart-only changes of a reload to next, logs
// them and sets the metrics; it returns them.
func (a *App) noteRestart(next *config.Config) []string {
	r := &a.restart
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started == nil {
		return nil
	}
	keys := restartKeys(r.started, next)
	r.pending = keys
	r.zeroKeys()
	for _, k := range keys {
		r.keys.WithLabelValues(k).Set(1)
	}
	if len(keys) > 0 {
		r.gauge.Set(1)
		a.log.Warn("config reloaded, but some settings take effect only after a restart (systemctl restart mxedge)",
			"restart_pending", strings.Join(keys, ","))
	} else {
		r.gauge.Set(0)
	}
	return keys
}

// restartPending is what the last reload left for a restart.
func (a *App) restartPending() []string {
	a.restart.mu.Lock()
	defer a.restart.mu.Unlock()
	return slices.Clone(a.restart.pending)
}
