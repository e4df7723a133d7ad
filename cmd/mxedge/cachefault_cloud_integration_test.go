package main

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mxedge/mxedge/cache"
	"github.com/mxedge/mxedge/cmd/internal/peers"
	"github.com/mxedge/mxedge/edge"
)

// The Show item with a cloud: an edge in mode auto, registered to the lab
// cloud, whose cache file is truncated or has bytes overwritten before it
// starts, comes up serving, proxies MAB through the cloud, moves the file
// aside (status shows the fault) and refills its cache from the cloud's
// sync.
func TestDamagedCacheCloudRebuild(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("real-process test")
	}
	peers.RequireBin(t, "radclient")
	const seeded = 20 // what the cloud holds for this site
	for _, tt := range cacheDamage {
		t.Run(tt.name, func(t *testing.T) {
			state := t.TempDir()
			cloud := startCloudProc(t, "--dir", t.TempDir(), "--mab="+mabMAC+"="+mabVLAN, "--seed", strconv.Itoa(seeded))
			if out, code := runEdgeCmd(t, "register", "--config", freshConfig(t), "--registration-code", cloud.lab.Code,
				"--cloud", cloud.lab.API, "--cloud-ca", cloud.lab.CA, "--state-dir", state); code != 0 {
				t.Fatalf("register: exit %d\n%s", code, out)
			}

			// A cache file holding entries the cloud does not list (a
			// stale cache spanning several pages), then damaged.
			store, err := cache.Open(filepath.Join(state, "cache.db"), cache.Options{})
			if err != nil {
				t.Fatal(err)
			}
			for i := range 200 {
				if err := store.Upsert(cache.Entry{MAC: fmt.Sprintf("02:00:00:00:%02x:%02x", i>>8, i&0xff), AuthType: cache.AuthMAB,
					Authorization: cache.Authorization{VLAN: "99", Role: strings.Repeat("r", 40)}}); err != nil {
					t.Fatal(err)
				}
			}
			if err := store.Close(); err != nil {
				t.Fatal(err)
			}
			damageCache(t, tt.damage)(&edgeConfig{StateDir: state})

			e := startEdge(t, edgeConfig{Secret: labSecret, StateDir: state, Mode: "auto", NoCloudSection: true,
				Extra: "cloud:\n  sync_interval: 1h\n"})

			// Proxying needs no cache: the cloud answers through the edge.
			res, err := peers.Radclient(ctxFor(t, 10*time.Second), e.Auth, labSecret, "auth", mabAttrs(mabMAC))
			if err != nil {
				t.Fatal(err)
			}
			if res.Code != "Access-Accept" || res.Attr("Tunnel-Private-Group-Id") != mabVLAN {
				t.Fatalf("MAB through the cloud with a damaged cache:\n%s\n%s", res.Output, tailString(e.Log(), 30))
			}

			var moved []string
			if !waitFor(10*time.Second, func() bool {
				moved, _ = filepath.Glob(filepath.Join(state, "cache.db.damaged-*"))
				return len(moved) == 1
			}) {
				t.Fatalf("cache file not moved aside: %v\n%s", moved, tailString(e.Log(), 30))
			}
			// The sync refills it with what the cloud holds (plus the
			// client just learned through it); the stale entries are gone.
			var st edge.StatusReport
			if !waitFor(20*time.Second, func() bool {
				st = edge.StatusReport{}
				edgeJSON(t, e, &st, "status")
				return st.Cache != nil && st.Cache.Entries >= seeded && !st.Cache.FullSync
			}) {
				t.Fatalf("cache not rebuilt by the sync: %+v\n%s", st.Cache, tailString(e.Log(), 30))
			}
			if n := cacheTotal(t, e); n != seeded && n != seeded+1 {
				t.Fatalf("cache ls: %d entries after the rebuild, want %d (+1 learned)", n, seeded)
			}
			if f := st.Cache.LastFault; f == nil || f.MovedTo != moved[0] {
				t.Fatalf("status last_fault %+v, want the file moved to %s", f, moved[0])
			}
			if got := e.metric(t, "mxedge_cache_faults_total"); got < 1 {
				t.Errorf("mxedge_cache_faults_total %v, want at least 1", got)
			}
			if st.Mode != "cloud" {
				t.Errorf("mode %q, want cloud", st.Mode)
			}
			select {
			case <-e.exited:
				t.Fatalf("daemon exited\n%s", tailString(e.Log(), 30))
			default:
			}
		})
	}
}
