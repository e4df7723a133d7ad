package cloudlink

import (
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	max := 5 * time.Minute
	tests := []struct {
		fails    int
		r        float64
		min, top time.Duration
	}{
		{1, 0, 500 * time.Millisecond, 500 * time.Millisecond},
		{1, 0.999, 500 * time.Millisecond, time.Second},
		{2, 0.5, time.Second, 2 * time.Second},
		{5, 0, 8 * time.Second, 8 * time.Second},
		{9, 0.999, 128 * time.Second, 256 * time.Second},
		{10, 0, max / 2, max / 2},
		{1000, 0.999, max / 2, max},
	}
	for _, tt := range tests {
		got := backoff(tt.fails, max, tt.r)
		if got < tt.min || got > tt.top {
			t.Errorf("backoff(%d, r=%v) = %v, want %v..%v", tt.fails, tt.r, got, tt.min, tt.top)
		}
	}
}

func TestJitter(t *testing.T) {
	d := 30 * time.Minute
	for _, tt := range []struct {
		r        float64
		min, top time.Duration
	}{
		{0, 27 * time.Minute, 27 * time.Minute},
		{0.5, d, d},
		{0.999, 32*time.Minute + 59*time.Second, 33 * time.Minute},
	} {
		if got := jitter(d, tt.r); got < tt.min || got > tt.top {
			t.Errorf("jitter(%v, %v) = %v, want %v..%v", d, tt.r, got, tt.min, tt.top)
		}
	}
}

func TestToSyncPageSiteFilter(t *testing.T) {
	p := &CachePage{Cursor: "c", Full: true, Final: true,
		Upserts: []Entry{
			{MAC: "aabbccddeeff", AuthType: "mab", SiteID: "hq"},
			{MAC: "aabbccddee00", AuthType: "mab", SiteID: "branch"},
			{MAC: "aabbccddee11", AuthType: "eap-tls", SiteID: "branch", Identity: Identity{CN: "host/x"}},
		},
		Tombstones: []Tombstone{{MAC: "001122334455"}},
	}
	for _, tt := range []struct {
		sites        []string
		ups, tombs   int
		firstTombMAC string
	}{
		{nil, 3, 1, "001122334455"},
		{[]string{"hq"}, 1, 3, "001122334455"},
		{[]string{"branch"}, 2, 2, "001122334455"},
	} {
		sp := toSyncPage(p, tt.sites)
		if len(sp.Upserts) != tt.ups || len(sp.Tombstones) != tt.tombs || sp.Tombstones[0].MAC != tt.firstTombMAC {
			t.Errorf("sites %v: %d upserts %d tombstones", tt.sites, len(sp.Upserts), len(sp.Tombstones))
		}
		if sp.Cursor != "c" || !sp.Full || !sp.Final {
			t.Errorf("page flags lost: %+v", sp)
		}
	}
	// An EAP-TLS tombstone from the filter carries the identity.
	sp := toSyncPage(p, []string{"hq"})
	if k := sp.Tombstones[2]; k.Identity != "host/x" {
		t.Errorf("eap-tls filtered tombstone %+v", k)
	}
}
