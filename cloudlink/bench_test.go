package cloudlink_test

import (
	"path/filepath"
	"testing"

	"github.com/mxedge/mxedge/cache"
	"github.com/mxedge/mxedge/cloudlink"
)

// BenchmarkFullSync measures a full resync of 20k entries over HTTPS in
// 5000-entry pages, JSON decode and bbolt commit included.
func BenchmarkFullSync(b *testing.B) {
	const n = 20_000
	l := mustLab(b)
	l.cloud.UpsertMany(mabEntries(n, "site-lab"))
	_, _, c := mustRegister(b, l)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		st, err := cache.Open(filepath.Join(b.TempDir(), "cache.db"), cache.Options{})
		if err != nil {
			b.Fatal(err)
		}
		s, err := cloudlink.NewSyncer(cloudlink.SyncerConfig{Client: c, Store: st, PageSize: 5000})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := s.SyncCache(b.Context()); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if st.Count() != n {
			b.Fatalf("%d entries", st.Count())
		}
		st.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}
