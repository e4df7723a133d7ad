package labcloud

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/mxedge/mxedge/cloudlink"
)

// An EAP-TLS accept is logged and served as an entry keyed by MAC and
// certificate identity.
func TestRecordEAPTLS(t *testing.T) {
	c := mustCloud(t)
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	c.RecordEAPTLS("edge-1", cloudlink.Entry{MAC: "020000000001",
		Identity:      cloudlink.Identity{CN: "laptop-1", Serial: "0a"},
		Authorization: cloudlink.Authorization{VLAN: "60"}, LastAuthAt: at})
	p, ok := c.pageLocked("", 10, nil)
	if !ok || len(p.Upserts) != 1 {
		t.Fatalf("page %+v ok %v", p, ok)
	}
	e := p.Upserts[0]
	if e.AuthType != "eap-tls" || e.Key().Identity != "laptop-1" || e.SiteID != "site-lab" ||
		e.Authorization.VLAN != "60" || !e.LastAuthAt.Equal(at) {
		t.Errorf("entry %+v", e)
	}
	if st := c.Stats(); st.Accepts != 1 || st.Auths != 1 || st.CacheEntries != 1 {
		t.Errorf("stats %+v", st)
	}
	if a := c.st.Auths[0]; a.Method != "eap-tls" || a.Identity != "laptop-1" || a.Edge != "edge-1" {
		t.Errorf("auth log %+v", a)
	}
}

// The config document carries the RADIUS clients, and its ETag changes
// with them so that edges pull the new ones.
func TestRADIUSClientsPushed(t *testing.T) {
	c := mustCloud(t)
	c.st.Edges["edge-1"] = &edge{ID: "edge-1"}
	doc := func() (cloudlink.EdgeConfig, string) {
		b, etag := c.edgeConfig("edge-1")
		var d cloudlink.EdgeConfig
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatal(err)
		}
		return d, etag
	}
	d0, tag0 := doc()
	if len(d0.RADIUSClients) != 0 {
		t.Fatalf("clients %+v", d0.RADIUSClients)
	}
	want := []cloudlink.RADIUSClient{{Name: "sw", Address: "127.0.0.1/32", Secret: "s", RequireMessageAuthenticator: true}}
	c.SetRADIUSClients(want)
	d1, tag1 := doc()
	if len(d1.RADIUSClients) != 1 || d1.RADIUSClients[0] != want[0] || tag1 == tag0 {
		t.Errorf("clients %+v etag %s → %s", d1.RADIUSClients, tag0, tag1)
	}
}

func TestRoleAttribute(t *testing.T) {
	for _, tc := range []struct {
		vendor, name, value string
		vendorID            uint32
	}{
		{"cisco", "Cisco-AVPair", "shell:roles=r", 9},
		{"aruba", "Aruba-User-Role", "r", 14823},
		{"juniper", "Filter-Id", "r", 0},
		{"", "Filter-Id", "r", 0},
	} {
		a := RoleAttribute(tc.vendor, "r")
		if a.Name != tc.name || a.Value != tc.value || a.VendorID != tc.vendorID {
			t.Errorf("%q: %+v", tc.vendor, a)
		}
	}
}
