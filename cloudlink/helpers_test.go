package cloudlink_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mxedge/mxedge/cache"
	"github.com/mxedge/mxedge/cloudlink"
	"github.com/mxedge/mxedge/cloudlink/labcloud"
)

// lab is the lab cloud behind an httptest TLS server, with fault hooks.
type lab struct {
	cloud *labcloud.Cloud
	srv   *httptest.Server
	dir   string
	// dropEvents makes the next N events responses fail after the
	// server processed the batch: the answer is lost, not the upload.
	dropEvents atomic.Int32
	hits       sync.Map // path → *atomic.Int64
}

func mustLab(t testing.TB) *lab {
	t.Helper()
	l := &lab{dir: t.TempDir()}
	var err error
	l.cloud, err = labcloud.Open(labcloud.Options{Dir: l.dir, MAB: map[string]string{"aabbccddeeff": "41"}})
	if err != nil {
		t.Fatal(err)
	}
	tc, err := l.cloud.APITLS()
	if err != nil {
		t.Fatal(err)
	}
	h := l.cloud.Handler()
	l.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := l.hits.LoadOrStore(r.URL.Path, new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
		if r.URL.Path == cloudlink.PathEvents && l.dropEvents.Add(-1) >= 0 {
			h.ServeHTTP(httptest.NewRecorder(), r)
			http.Error(w, "upstream connect error", http.StatusBadGateway)
			return
		}
		h.ServeHTTP(w, r)
	}))
	l.srv.TLS = tc
	l.srv.StartTLS()
	t.Cleanup(l.srv.Close)
	l.cloud.SetEndpoints(l.srv.URL, "127.0.0.1:2083")
	return l
}

func (l *lab) hitCount(path string) int64 {
	n, ok := l.hits.Load(path)
	if !ok {
		return 0
	}
	return n.(*atomic.Int64).Load()
}

func (l *lab) caFile() string { return filepath.Join(l.dir, "ca.pem") }

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// mustRegister registers a fresh edge and returns its state dir and client.
func mustRegister(t testing.TB, l *lab) (string, *cloudlink.Registration, *cloudlink.Client) {
	t.Helper()
	dir := t.TempDir()
	reg, err := cloudlink.Register(ctxT(t), l.srv.URL, l.cloud.NewCode(), dir, cloudlink.RegisterOptions{CAFile: l.caFile()})
	if err != nil {
		t.Fatal(err)
	}
	c, err := reg.Client(cloudlink.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return dir, reg, c
}

func mustStore(t *testing.T) *cache.Store {
	t.Helper()
	s, err := cache.Open(filepath.Join(t.TempDir(), "cache.db"), cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func mustSyncer(t *testing.T, cfg cloudlink.SyncerConfig) *cloudlink.Syncer {
	t.Helper()
	s, err := cloudlink.NewSyncer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mabEntries(n int, site string) []cloudlink.Entry {
	es := make([]cloudlink.Entry, n)
	now := time.Now().UTC()
	for i := range es {
		mac := []byte("0200000000" + "00")
		const hexd = "0123456789abcdef"
		for j, k := 11, i; j >= 4; j-- {
			mac[j] = hexd[k%16]
			k /= 16
		}
		if site == "site-b" {
			mac[1] = '6'
		}
		es[i] = cloudlink.Entry{MAC: string(mac), AuthType: "mab", Authorization: cloudlink.Authorization{VLAN: "100"},
			SiteID: site, LastAuthAt: now}
	}
	return es
}

// connectProxy is a CONNECT proxy that tunnels every request to target,
// whatever host it names, and counts the tunnels.
func connectProxy(t *testing.T, target string) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	p := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect {
			http.Error(w, "CONNECT only", http.StatusMethodNotAllowed)
			return
		}
		n.Add(1)
		up, err := net.Dial("tcp", target)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		hj, _ := w.(http.Hijacker)
		c, brw, err := hj.Hijack()
		if err != nil {
			up.Close()
			return
		}
		_, _ = c.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n"))
		go func() { _, _ = io.Copy(up, bufio.NewReader(brw)); up.Close() }()
		_, _ = io.Copy(c, up)
		c.Close()
	}))
	t.Cleanup(p.Close)
	return p, &n
}

// metricValue sums every series of the named metric.
func metricValue(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var v float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			v += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return v
}
