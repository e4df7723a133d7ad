package edge

import (
	"context"
	"errors"
	"log/slog"
	"os"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mxedge/mxedge/cache"
	"github.com/mxedge/mxedge/cloudlink"
	"github.com/mxedge/mxedge/edge/config"
)

// startCloudLink starts the background link to the cloud API (config
// pull, cache sync, event upload, heartbeats) for a registered edge. An
// unregistered edge runs without it: RADIUS proxying needs no API, so this
// is a warning, not a failure. store may be nil (survivability off); the
// link then only pulls config and heartbeats. Nothing here blocks: the
// first sync runs in the background.
func startCloudLink(ctx context.Context, cfg *config.Config, store *cache.Store, log *slog.Logger, reg prometheus.Registerer) (stop func(), status func() any, err error) {
	return startCloudLinkWith(ctx, cfg, store, log, reg, nil, nil)
}

// startCloudLinkWith is startCloudLink that hands each config the syncer
// pulls (and the persisted one, at once) to onConfig, and adds
// heartbeat's fields (the uplink mode) to each heartbeat, when set.
func startCloudLinkWith(ctx context.Context, cfg *config.Config, store *cache.Store, log *slog.Logger, reg prometheus.Registerer,
	onConfig func(*cloudlink.EdgeConfig), heartbeat func() map[string]string) (stop func(), status func() any, err error) {
	stop, status, _, err = startCloudLinkSyncer(ctx, cfg, store, log, reg, onConfig, heartbeat, nil)
	return stop, status, err
}

// startCloudLinkSyncer is startCloudLinkWith that also returns the syncer
// (nil when the edge is not registered), for an early cache resync; beats
// registers its loops with the watchdog (nil: none).
func startCloudLinkSyncer(ctx context.Context, cfg *config.Config, store *cache.Store, log *slog.Logger, reg prometheus.Registerer,
	onConfig func(*cloudlink.EdgeConfig), heartbeat func() map[string]string, beats func(string) cloudlink.LoopHeartbeat) (stop func(), status func() any, syncer *cloudlink.Syncer, err error) {
	log = log.With("component", "cloudlink")
	r, err := cloudlink.LoadRegistration(cfg.StateDir)
	if errors.Is(err, cloudlink.ErrNotRegistered) {
		// Waiting, not failing: the package starts the service before the
		// operator registers, and the registration is picked up at once
		// (register.go).
		log.Info("waiting for registration: mxedge register --registration-code CODE; no config pull, cache sync or event upload until then",
			"state_dir", cfg.StateDir)
		return func() {}, func() any { return map[string]any{"registered": false} }, nil, nil
	}
	if err != nil {
		return nil, nil, nil, err
	}
	if cfg.Cloud.APIURL != "" && cfg.Cloud.APIURL != r.APIURL {
		log.Info("cloud.api_url differs from the registration's; using the registration's", "config", cfg.Cloud.APIURL, "registration", r.APIURL)
	}
	client, err := r.Client(cloudlink.ClientOptions{ProxyURL: cfg.Cloud.ProxyURL, UserAgent: "mxedge"})
	if err != nil {
		return nil, nil, nil, err
	}
	var st cloudlink.Store
	if store != nil {
		st = store // a nil *cache.Store must stay a nil interface
	}
	s, err := cloudlink.NewSyncer(cloudlink.SyncerConfig{
		Client:          client,
		Store:           st,
		EdgeID:          r.EdgeID,
		StateDir:        cfg.StateDir,
		SyncInterval:    cfg.Cloud.SyncInterval,
		CachingSiteIDs:  cfg.Cloud.CachingSiteIDs,
		OnConfig:        onConfig,
		HeartbeatStatus: heartbeat,
		Logger:          log,
		Registerer:      reg,
		Heartbeats:      beats,
	})
	if err != nil {
		return nil, nil, nil, err
	}
	log.Info("cloud link starting", "edge_id", r.EdgeID, "api", r.APIURL, "sync_interval", cfg.Cloud.SyncInterval)
	stopSync := s.Start(ctx)
	return func() { stopSync(); client.CloseIdleConnections() }, func() any { return s.Status() }, s, nil
}

// cloudRadSec returns cloud.radsec with what the file leaves out taken from
// the registration: the servers, the client certificate and key (both
// empty in the file), and the CA when the configured file does not exist
// (the default path on a fresh install). Without a registration it is
// the file's section unchanged.
func cloudRadSec(cfg *config.Config) config.CloudRadSec {
	rs := cfg.Cloud.RadSec
	r, err := cloudlink.LoadRegistration(cfg.StateDir)
	if err != nil {
		return rs
	}
	if len(rs.Servers) == 0 {
		rs.Servers = r.RadSecServers
	}
	if rs.Cert == "" && rs.Key == "" {
		rs.Cert, rs.Key = r.CertFile, r.KeyFile
	}
	if _, err := os.Stat(rs.CA); rs.CA == "" || err != nil {
		rs.CA = r.CAFile
	}
	return rs
}
