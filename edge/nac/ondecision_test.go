package nac_test

import (
	"sync"
	"testing"

	"github.com/mxedge/mxedge/cache"
	"github.com/mxedge/mxedge/edge/nac"
	"github.com/mxedge/mxedge/proxy/packet"
)

// OnDecision sees each event with its fields as it is emitted: a cached
// MAB client with source cache and its VLAN, an unknown one with the
// default.
func TestOnDecision(t *testing.T) {
	var (
		mu  sync.Mutex
		got []map[string]string
	)
	f := newFixture(t, cachedStore(), "generic", func(c *nac.Config) {
		c.OnDecision = func(ev cache.Event, fields []cache.Field) {
			m := map[string]string{"type": ev.Type, "mac": ev.MAC}
			for _, kv := range fields {
				m[kv.Key] = kv.Value
			}
			mu.Lock()
			got = append(got, m)
			mu.Unlock()
		}
	})
	defer f.close(t)
	for _, mac := range []string{"aabbcc000001", "aabbcc0000ff"} {
		f.serve(t, request(t, packet.CodeAccessRequest, 9, nil, attr{1, []byte(mac)}, attr{2, []byte(mac)}, attr{31, []byte(mac)}))
	}
	mu.Lock()
	defer mu.Unlock()
	want := []map[string]string{
		{"mac": "aabbcc000001", "source": "cache", "vlan": "printers", "result": "accept"},
		{"mac": "aabbcc0000ff", "source": "default", "vlan": "41", "result": "accept"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d decisions: %v", len(got), got)
	}
	for i, w := range want {
		if got[i]["type"] != nac.EventAllowed {
			t.Errorf("decision %d: type %q", i, got[i]["type"])
		}
		for k, v := range w {
			if got[i][k] != v {
				t.Errorf("decision %d: %s = %q, want %q (%v)", i, k, got[i][k], v, got[i])
			}
		}
	}
}
