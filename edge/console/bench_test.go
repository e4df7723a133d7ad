package console

import (
	"fmt"
	"net/http/httptest"
	"testing"
	"time"
)

// BenchmarkPageLoad10k loads each page with 10,000 decisions in memory
// (a full ring). The budget is 50 ms of server CPU per load;
// ns/op here is that CPU on one core.
func BenchmarkPageLoad10k(b *testing.B) {
	h, rec, _, _ := newTestHandler(b, fakeSource{}, Auth{})
	for i := range DefaultRecorderSize {
		src := []string{"cloud", "cache", "default"}[i%3]
		rec.Record(Decision{Time: t0.Add(time.Duration(i) * time.Millisecond), MAC: FormatMAC(fmt.Sprintf("02%010x", i%2500)),
			Identity: fmt.Sprintf("user%d@example.org", i%700), Client: "core-switch", Method: "eap-tls",
			Result: "accept", VLAN: "51", Source: src})
	}
	if rec.Len() != 10000 {
		b.Fatalf("%d decisions", rec.Len())
	}
	for _, path := range []string{
		"/console/", "/console/decisions", "/console/decisions?limit=1000",
		"/console/decisions?mac=02:00:00:00:00:07", "/console/decisions?identity=user699@",
		"/console/api/decisions?limit=1000", "/console/client?mac=aa:bb:cc:dd:ee:ff", "/console/devices",
	} {
		b.Run(path, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
				if w.Code != 200 {
					b.Fatalf("%s: %d", path, w.Code)
				}
			}
		})
	}
}
