package labcloud

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mxedge/mxedge/cloudlink"
	"github.com/mxedge/mxedge/internal/labpki"
)

func mustCloud(t testing.TB) *Cloud {
	t.Helper()
	c, err := Open(Options{Dir: t.TempDir(), MAB: map[string]string{"aabbccddeeff": "41"}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func csrPEM(t *testing.T) string {
	t.Helper()
	csr, err := labpki.CSRPEM(labpki.ECKey(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return string(csr)
}

func call(t *testing.T, h http.Handler, method, path, body, remote string, tlsState *tls.ConnectionState) (int, cloudlink.Error) {
	t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	r.RemoteAddr = remote
	r.TLS = tlsState
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	var e cloudlink.Error
	_ = json.Unmarshal(w.Body.Bytes(), &e)
	return w.Code, e
}

func TestHandlerErrors(t *testing.T) {
	c := mustCloud(t)
	code := c.NewCode()
	ghost, err := c.ca.sign(mustKey(t), "edge-ghost", false)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(ghost)
	ghostCert, _ := x509.ParseCertificate(blk.Bytes)
	ghostTLS := &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{ghostCert}}}
	reg := func(code, csr string) string {
		b, _ := json.Marshal(cloudlink.RegisterRequest{Code: code, CSR: csr})
		return string(b)
	}
	tests := []struct {
		name, method, path, body, remote string
		tls                              *tls.ConnectionState
		status                           int
		code                             string
	}{
		{"register: not JSON", "POST", "/v1/register", "{", "127.0.0.1:1", nil, 400, cloudlink.CodeBadRequest},
		{"register: no CSR", "POST", "/v1/register", reg(code, ""), "127.0.0.1:1", nil, 400, cloudlink.CodeBadRequest},
		{"register: unknown code", "POST", "/v1/register", reg("NOPE", csrPEM(t)), "127.0.0.1:1", nil, 403, cloudlink.CodeInvalidCode},
		{"config: no certificate", "GET", "/v1/config", "", "127.0.0.1:1", nil, 401, cloudlink.CodeUnauthorized},
		{"cache: unknown edge", "GET", "/v1/cache", "", "127.0.0.1:1", ghostTLS, 401, cloudlink.CodeUnauthorized},
		{"events: no certificate", "POST", "/v1/events", "{}", "127.0.0.1:1", nil, 401, cloudlink.CodeUnauthorized},
		{"admin: remote peer", "GET", "/lab/v1/stats", "", "192.0.2.1:1", nil, 403, cloudlink.CodeUnauthorized},
		{"admin: bad mac", "POST", "/lab/v1/forget?mac=zz", "", "127.0.0.1:1", nil, 400, cloudlink.CodeBadRequest},
		{"no such path", "GET", "/v2/config", "", "127.0.0.1:1", nil, 404, cloudlink.CodeNotFound},
		{"admin: stats", "GET", "/lab/v1/stats", "", "[::1]:1", nil, 200, ""},
	}
	h := c.Handler()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, e := call(t, h, tt.method, tt.path, tt.body, tt.remote, tt.tls)
			if status != tt.status || e.Code != tt.code {
				t.Errorf("got %d %q (%s), want %d %q", status, e.Code, e.Message, tt.status, tt.code)
			}
		})
	}
}

func mustKey(t *testing.T) *ecdsa.PublicKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &k.PublicKey
}

func TestStatePersists(t *testing.T) {
	dir := t.TempDir()
	c, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	code := c.NewCode()
	c.UpsertMany(entries(5))
	c2, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if !c2.ca.cert.Equal(c.ca.cert) {
		t.Error("CA regenerated on restart")
	}
	if _, ok := c2.st.Codes[code]; !ok || c2.Stats().CacheEntries != 5 || c2.st.Epoch != c.st.Epoch {
		t.Errorf("state not restored: %+v", c2.Stats())
	}
}

func entries(n int) []cloudlink.Entry {
	es := make([]cloudlink.Entry, n)
	for i := range es {
		es[i] = cloudlink.Entry{MAC: fmt.Sprintf("0200%08x", i), AuthType: "mab", SiteID: "site-lab",
			LastAuthAt: time.Unix(1700000000, 0).UTC()}
	}
	return es
}

// TestPages checks that a full resync pages every live entry exactly once
// whatever the page size, and that increments after it carry exactly
// the changes.
func TestPages(t *testing.T) {
	r := mrand.New(mrand.NewPCG(1, 2))
	for round := range 20 {
		c := mustCloud(t)
		n := r.IntN(60)
		c.UpsertMany(entries(n))
		limit := 1 + r.IntN(10)
		seen := map[string]int{}
		cursor, pages := "", 0
		for {
			p, ok := c.pageLocked(cursor, limit, nil)
			if !ok {
				t.Fatalf("round %d: cursor %q refused", round, cursor)
			}
			if pages == 0 != p.FullStart || !p.Full {
				t.Fatalf("round %d page %d: full %v full_start %v", round, pages, p.Full, p.FullStart)
			}
			for _, e := range p.Upserts {
				seen[e.MAC]++
			}
			pages++
			cursor = p.Cursor
			if p.Final {
				break
			}
			if pages > n+1 {
				t.Fatalf("round %d: no final page", round)
			}
		}
		if len(seen) != n {
			t.Fatalf("round %d: %d entries seen, want %d", round, len(seen), n)
		}
		for mac, k := range seen {
			if k != 1 {
				t.Fatalf("round %d: %s sent %d times", round, mac, k)
			}
		}
		// Increments: one change, one removal (when there is something).
		c.Upsert(cloudlink.Entry{MAC: "aabbccddeeff", AuthType: "mab"})
		want := 1
		if n > 0 {
			c.Forget(fmt.Sprintf("0200%08x", 0))
			want++
		}
		p, ok := c.pageLocked(cursor, 2, nil)
		if !ok || !p.Final || p.Full || len(p.Upserts)+len(p.Tombstones) != want {
			t.Fatalf("round %d: increment %+v ok %v", round, p, ok)
		}
	}
}

func TestCursorRefused(t *testing.T) {
	c := mustCloud(t)
	c.UpsertMany(entries(3))
	for _, cur := range []string{
		"garbage",
		"00000000.i.1",
		c.st.Epoch + ".i.99",
		c.st.Epoch + ".i",
		c.st.Epoch + ".f.1.zz",
		c.st.Epoch + ".x.1",
		c.st.Epoch + ".i.-1",
	} {
		if _, ok := c.pageLocked(cur, 10, nil); ok {
			t.Errorf("cursor %q accepted", cur)
		}
	}
	p, _ := c.pageLocked("", 10, nil)
	c.LoseCursors()
	if _, ok := c.pageLocked(p.Cursor, 10, nil); ok {
		t.Error("cursor of a forgotten epoch accepted")
	}
}

func FuzzCursor(f *testing.F) {
	f.Add("")
	f.Add("abcd.i.0")
	f.Add("abcd.f.0.61")
	f.Add("...")
	c := mustCloud(f)
	c.UpsertMany(entries(4))
	f.Fuzz(func(t *testing.T, cur string) {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.pageLocked(cur, 2, nil)
		c.pageLocked(c.st.Epoch+"."+cur, 2, nil)
	})
}

func FuzzNormalizeMAC(f *testing.F) {
	for _, s := range []string{"aa:bb:cc:dd:ee:ff", "AA-BB-CC-DD-EE-FF", "aabb.ccdd.eeff", "aabbccddeeff", "zz", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, ok := NormalizeMAC(s)
		if ok && len(m) != 12 {
			t.Fatalf("NormalizeMAC(%q) = %q", s, m)
		}
		if ok {
			if m2, ok2 := NormalizeMAC(m); !ok2 || m2 != m {
				t.Fatalf("not idempotent: %q → %q → %q", s, m, m2)
			}
		}
	})
}

func TestAuthorizeMAB(t *testing.T) {
	c := mustCloud(t)
	if vlan, ok := c.AuthorizeMAB("edge-1", "aabbccddeeff", "aabbccddeeff"); !ok || vlan != "41" {
		t.Errorf("allow-listed: %q %v", vlan, ok)
	}
	if _, ok := c.AuthorizeMAB("edge-1", "001122334455", "x"); ok {
		t.Error("unknown MAC accepted")
	}
	c.Accounting()
	st := c.Stats()
	if st.CacheEntries != 1 || st.Accepts != 1 || st.Auths != 2 || st.Accounting != 1 {
		t.Errorf("stats %+v", st)
	}
	p, _ := c.pageLocked("", 10, nil)
	if len(p.Upserts) != 1 || p.Upserts[0].Authorization.VLAN != "41" || p.Upserts[0].MAC != "aabbccddeeff" {
		t.Errorf("served cache %+v", p.Upserts)
	}
}
