package main

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mxedge/mxedge/cache"
	"github.com/mxedge/mxedge/cmd/internal/peers"
)

// damageCache returns an edgeConfig mod that damages the seeded
// state_dir/cache.db before the daemon starts, after adding pending
// events and held accounting to it for the salvage to bring back.
func damageCache(t *testing.T, damage func(t *testing.T, path string, used int64)) func(*edgeConfig) {
	return func(c *edgeConfig) {
		path := filepath.Join(c.StateDir, "cache.db")
		s, err := cache.Open(path, cache.Options{})
		if err != nil {
			t.Fatal(err)
		}
		for range 5 {
			if err := s.AppendEvent(cache.Event{Type: "NAC Client Access Allowed", MAC: localMABMAC}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		// The newest meta page's high-water mark: what bbolt maps and reads.
		pgid := func(off int) (uint64, uint64) {
			return binary.LittleEndian.Uint64(b[off+16+40:]), binary.LittleEndian.Uint64(b[off+16+48:])
		}
		hwm0, tx0 := pgid(0)
		hwm1, tx1 := pgid(4096)
		hwm := hwm0
		if tx1 > tx0 {
			hwm = hwm1
		}
		damage(t, path, int64(hwm)*4096)
	}
}

// cacheDamage are the tester's two ways a cache file was damaged: cut
// short, and bytes overwritten in every data page.
var cacheDamage = []struct {
	name   string
	damage func(t *testing.T, path string, used int64)
}{
	{"truncated to half", func(t *testing.T, path string, used int64) {
		if err := os.Truncate(path, used/2); err != nil {
			t.Fatal(err)
		}
	}},
	{"data pages overwritten", func(t *testing.T, path string, used int64) {
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		junk := make([]byte, 64)
		for i := range junk {
			junk[i] = byte(i*37 + 11)
		}
		for off := int64(2 * 4096); off < used; off += 4096 {
			if _, err := f.WriteAt(junk, off+40); err != nil {
				t.Fatal(err)
			}
		}
	}},
}

// A damaged cache file (the tester's two cases: truncated to half, and
// bytes overwritten in its data pages) no longer crashes the daemon: it
// starts, moves the file aside, answers MAB locally from an empty cache,
// and counts the fault.
func TestDamagedCacheStarts(t *testing.T) {
	t.Parallel()
	peers.RequireBin(t, "radclient")
	p := labPKI(t)
	for _, tt := range cacheDamage {
		t.Run(tt.name, func(t *testing.T) {
			e, stateDir := startLocalEdge(t, p, p.EAPServerRSA, damageCache(t, tt.damage))
			var moved []string
			if !waitFor(10*time.Second, func() bool {
				moved, _ = filepath.Glob(filepath.Join(stateDir, "cache.db.damaged-*"))
				return len(moved) == 1
			}) {
				t.Fatalf("cache file not moved aside: %v\n%s", moved, tailString(e.Log(), 30))
			}
			res, err := peers.Radclient(ctxFor(t, 10*time.Second), e.Auth, labSecret, "auth", []string{
				`User-Name = "aabbcc0000ff"`, `User-Password = "aabbcc0000ff"`,
				`Service-Type = Call-Check`, `Calling-Station-Id = "AA-BB-CC-00-00-FF"`, ma})
			if err != nil {
				t.Fatal(err)
			}
			if res.Code != "Access-Accept" || res.Attr("Tunnel-Private-Group-Id") != localDefMAB {
				t.Fatalf("MAB after the move: %s VLAN %q\n%s", res.Code, res.Attr("Tunnel-Private-Group-Id"), tailString(e.Log(), 30))
			}
			if got := e.metric(t, "mxedge_cache_faults_total"); got < 1 {
				t.Errorf("mxedge_cache_faults_total %v, want at least 1", got)
			}
			select {
			case <-e.exited:
				t.Fatalf("daemon exited\n%s", tailString(e.Log(), 30))
			default:
			}
		})
	}
}
