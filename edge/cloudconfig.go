package edge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sync"

	"github.com/mxedge/mxedge/cache"
	"github.com/mxedge/mxedge/cloudlink"
	"github.com/mxedge/mxedge/edge/config"
)

// The cloud pushes part of the configuration (CONFIG.md): RADIUS clients,
// survivability settings, federation, the org CA and the local server
// certificate. Whatever the file (or an MXEDGE_* variable) sets wins; what
// it leaves out comes from the cloud; what neither sets keeps its default.
// Precedence is decided per pushed setting rather than per top-level
// section so that a file that only tunes survivability.health still takes
// the cloud's VLANs and CA.

// Config sources, as `mxedge status` shows them.
const (
	SourceFile    = "file" // the config file or an MXEDGE_* variable
	SourceCloud   = "cloud"
	SourceDefault = "default"
)

// The settings the cloud can push, by the key that names them in the file.
// An org CA comes with its CRLs and a certificate with its key: one source
// for each pair, so that a file CA is never checked against cloud CRLs.
const (
	KeyClients        = "radius.clients"
	KeyEnabled        = "survivability.enabled"
	KeyCacheTTLDays   = "survivability.cache_ttl_days"
	KeyDefaultMABVLAN = "survivability.default_mab_vlan"
	KeyDefaultDot1X   = "survivability.default_dot1x_vlan"
	KeyOrgCA          = "survivability.org_ca"   // with survivability.crl
	KeyEAPCert        = "survivability.eap_cert" // with survivability.eap_key
	KeyFederation     = "federation"
	KeyCachingSiteIDs = "cloud.caching_site_ids"
)

// Names of the files the syncer writes under state_dir/cloud/.
const (
	cloudOrgCAFile  = "org-ca.pem"
	cloudCRLFile    = "crl-%d.pem"
	cloudServerCert = "server.pem"
	cloudServerKey  = "server.key"
)

// mergeCloud returns the effective configuration: file with every pushed
// setting it leaves out taken from doc (nil: no cloud config), where each
// setting came from, and notes about cloud values it could not use. file
// is not modified. The certificate files are the ones the syncer wrote
// from doc under file.StateDir.
func mergeCloud(file *config.Config, doc *cloudlink.EdgeConfig) (*config.Config, map[string]string, []string) {
	c := *file
	src := map[string]string{}
	var notes []string
	if doc == nil {
		doc = &cloudlink.EdgeConfig{}
	}
	// pick records the source of key: the file's if it set key (or any of
	// also), else the cloud's if cloud says it has one, else the default.
	pick := func(key string, cloud bool, also ...string) bool {
		local := file.IsLocal(key)
		for _, k := range also {
			local = local || file.IsLocal(k)
		}
		switch {
		case local:
			src[key] = SourceFile
		case cloud:
			src[key] = SourceCloud
			return true
		default:
			src[key] = SourceDefault
		}
		return false
	}

	if pick(KeyClients, len(doc.RADIUSClients) > 0) {
		var n []string
		c.RADIUS.Clients, n = cloudClients(doc.RADIUSClients)
		notes = append(notes, n...)
		if len(c.RADIUS.Clients) == 0 {
			src[KeyClients] = SourceDefault
		}
	}

	s := &c.Survivability
	cs := doc.Survivability
	if pick(KeyEnabled, cs != nil) {
		s.Enabled = cs.Enabled
	}
	ttlOK := cs != nil && cs.CacheTTLDays >= 1 && cs.CacheTTLDays <= 30
	if cs != nil && cs.CacheTTLDays != 0 && !ttlOK {
		notes = append(notes, fmt.Sprintf("cloud config: survivability.cache_ttl_days %d is outside 1..30; ignored", cs.CacheTTLDays))
	}
	if pick(KeyCacheTTLDays, ttlOK) {
		s.CacheTTLDays = cs.CacheTTLDays
	}
	if pick(KeyDefaultMABVLAN, cs != nil && cs.DefaultMABVLAN != "") {
		s.DefaultMABVLAN = cs.DefaultMABVLAN
	}
	if pick(KeyDefaultDot1X, cs != nil && cs.DefaultDot1XVLAN != "") {
		s.DefaultDot1XVLAN = cs.DefaultDot1XVLAN
	}
	dir := filepath.Join(file.StateDir, cloudlink.ConfigDir)
	if pick(KeyOrgCA, doc.OrgCA != nil && doc.OrgCA.Certificates != "", "survivability.crl") {
		s.OrgCA = filepath.Join(dir, cloudOrgCAFile)
		s.CRL = nil
		for i := range doc.OrgCA.CRLs {
			s.CRL = append(s.CRL, filepath.Join(dir, fmt.Sprintf(cloudCRLFile, i)))
		}
	}
	if pick(KeyEAPCert, doc.ServerCert != nil && doc.ServerCert.Certificate != "", "survivability.eap_key") {
		s.EAPCert = filepath.Join(dir, cloudServerCert)
		s.EAPKey = filepath.Join(dir, cloudServerKey)
	}

	if pick(KeyFederation, len(doc.Federation) > 0) {
		c.Federation = cloudFederation(doc.Federation)
	}
	// Reported only: the syncer itself prefers the file's list.
	pick(KeyCachingSiteIDs, len(doc.CachingSiteIDs) > 0)
	return &c, src, notes
}

// cloudClients converts the cloud's RADIUS clients with the file's
// defaults for what the cloud leaves empty. A client that cannot be used
// (bad address, no secret, an address already listed) is skipped with a
// note rather than refusing the whole document.
func cloudClients(in []cloudlink.RADIUSClient) ([]config.Client, []string) {
	var out []config.Client
	var notes []string
	seen := map[netip.Prefix]bool{}
	for i, rc := range in {
		p, ok := config.ParseClientAddress(rc.Address)
		switch {
		case !ok:
			notes = append(notes, fmt.Sprintf("cloud config: radius_clients[%d]: address %q is not an IP or CIDR; skipped", i, rc.Address))
			continue
		case rc.Secret == "":
			notes = append(notes, fmt.Sprintf("cloud config: radius_clients[%d] (%s): no secret; skipped", i, rc.Address))
			continue
		case seen[p]:
			notes = append(notes, fmt.Sprintf("cloud config: radius_clients[%d]: %s is listed twice; the first wins", i, p))
			continue
		}
		seen[p] = true
		c := config.Client{
			Name: rc.Name, Address: p, Secret: config.Secret(rc.Secret), Vendor: rc.Vendor, Site: rc.Site,
			RequireMessageAuthenticator: rc.RequireMessageAuthenticator, CoAPort: rc.CoAPort,
			CoARequireMessageAuthenticator: true,
		}
		if c.Name == "" {
			c.Name = p.String()
		}
		if !slices.Contains(config.Vendors, c.Vendor) {
			if c.Vendor != "" {
				notes = append(notes, fmt.Sprintf("cloud config: radius_clients[%d]: vendor %q unknown; using generic", i, c.Vendor))
			}
			c.Vendor = "generic"
		}
		if c.CoAPort < 1 || c.CoAPort > 65535 {
			if c.CoAPort != 0 {
				notes = append(notes, fmt.Sprintf("cloud config: radius_clients[%d]: coa_port %d out of range; using 3799", i, c.CoAPort))
			}
			c.CoAPort = 3799
		}
		out = append(out, c)
	}
	return out, notes
}

func cloudFederation(in []cloudlink.Federation) []config.Federation {
	out := make([]config.Federation, 0, len(in))
	servers := func(ss []cloudlink.RADIUSServer) []config.Server {
		var o []config.Server
		for _, s := range ss {
			o = append(o, config.Server{Address: s.Address, Secret: config.Secret(s.Secret)})
		}
		return o
	}
	for _, f := range in {
		lb := f.LoadBalance
		if lb == "" {
			lb = "round_robin"
		}
		out = append(out, config.Federation{
			Name: f.Name, SSIDs: f.SSIDs, ExcludeRealms: f.ExcludeRealms, OperatorName: f.OperatorName,
			LoadBalance: lb, AuthServers: servers(f.AuthServers), AcctServers: servers(f.AcctServers),
		})
	}
	return out
}

// loadCloudDoc reads the cloud config the syncer persisted, so that an edge
// restarted while the WAN is down starts with it. An unregistered edge has
// none: a document left from an earlier registration is not trusted.
func loadCloudDoc(stateDir string) (*cloudlink.EdgeConfig, error) {
	if _, err := cloudlink.LoadRegistration(stateDir); err != nil {
		if errors.Is(err, cloudlink.ErrNotRegistered) {
			return nil, nil
		}
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(stateDir, cloudlink.ConfigFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var p struct {
		Config *cloudlink.EdgeConfig `json:"config"`
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("%s: %w", cloudlink.ConfigFile, err)
	}
	return p.Config, nil
}

// cloudState is the cloud's config document as the app applies it.
type cloudState struct {
	// reloadMu makes Reload one at a time: SIGHUP and cloud pushes both
	// call it.
	reloadMu sync.Mutex

	mu  sync.Mutex
	doc *cloudlink.EdgeConfig
	// sources are those of the running config; next, those of a merged
	// config that becomes the running one if Reload succeeds with it.
	sources map[string]string
	next    *config.Config
	nextSrc map[string]string
	queued  bool // an apply is scheduled and has not read doc yet
	stopped bool
	applies sync.WaitGroup
}

// withCloud merges the current cloud document into file (see mergeCloud),
// records the sources and logs what it could not use.
func (a *App) withCloud(file *config.Config) *config.Config {
	a.cc.mu.Lock()
	doc := a.cc.doc
	a.cc.mu.Unlock()
	cfg, src, notes := mergeCloud(file, doc)
	for _, n := range notes {
		a.log.Warn("config", "note", n)
	}
	running := a.cfg.Load()
	a.cc.mu.Lock()
	a.cc.promoteLocked(running)
	a.cc.next, a.cc.nextSrc = cfg, src
	a.cc.mu.Unlock()
	return cfg
}

// promoteLocked makes next's sources the running ones once running is
// next.
func (c *cloudState) promoteLocked(running *config.Config) {
	if c.next != nil && c.next == running {
		c.sources, c.next, c.nextSrc = c.nextSrc, nil, nil
	}
}

// startWithCloud is withCloud for Start: it first loads the document the
// syncer persisted. A document that cannot be read is logged and ignored:
// the file alone must still start the edge.
func (a *App) startWithCloud(file *config.Config) *config.Config {
	doc, err := loadCloudDoc(file.StateDir)
	if err != nil {
		a.log.Error("persisted cloud config unreadable; starting from the file alone", "err", err)
	}
	a.cc.mu.Lock()
	a.cc.doc = doc
	a.cc.mu.Unlock()
	return a.withCloud(file)
}

// configSources returns where each pushed setting of the running config
// came from: a merge that Reload then refused does not count.
func (a *App) configSources() map[string]string {
	running := a.cfg.Load()
	a.cc.mu.Lock()
	defer a.cc.mu.Unlock()
	a.cc.promoteLocked(running)
	return maps.Clone(a.cc.sources)
}

// onCloudConfig is the syncer's OnConfig. It must not block the syncer, so
// it only records doc and schedules a Reload in the background; pushes
// that arrive while one is scheduled are folded into it.
func (a *App) onCloudConfig(doc *cloudlink.EdgeConfig) {
	a.cc.mu.Lock()
	defer a.cc.mu.Unlock()
	if a.cc.stopped || reflect.DeepEqual(doc, a.cc.doc) {
		return // the syncer hands over the persisted document at start too
	}
	a.cc.doc = doc
	if a.cc.queued {
		return
	}
	a.cc.queued = true
	a.cc.applies.Add(1)
	go func() {
		defer a.cc.applies.Done()
		a.cc.mu.Lock()
		a.cc.queued = false // from here a newer push needs an apply of its own
		a.cc.mu.Unlock()
		if err := a.Reload(); err != nil {
			a.log.Error("cloud config not applied: reload refused; keeping the running config", "err", err)
			return
		}
		a.log.Info("cloud config applied", "sources", a.configSources())
	}()
}

// stopApplies waits for scheduled applies once the syncer has stopped,
// and refuses new ones: nothing may reload a closing app.
func (a *App) stopApplies() {
	a.cc.mu.Lock()
	a.cc.stopped = true
	a.cc.mu.Unlock()
	a.cc.applies.Wait()
}

// startCloud starts the cloud link with pushed configs applied to a; its
// stop also waits for an apply in flight.
func (a *App) startCloud(ctx context.Context, cfg *config.Config, store *cache.Store) (stop func(), status func() any, err error) {
	stopLink, status, syncer, err := startCloudLinkSyncer(ctx, cfg, store, a.log, a.reg, a.onCloudConfig, a.heartbeatStatus, a.syncerHeartbeat)
	if err != nil {
		return nil, nil, err
	}
	if syncer != nil {
		a.resync.Store(syncer)
	}
	return func() { stopLink(); a.stopApplies() }, status, nil
}
