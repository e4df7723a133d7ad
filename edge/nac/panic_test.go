package nac_test

import (
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mxedge/mxedge/cache"
)

// panicStore panics on its first event write, as bbolt can on a damaged
// file, and then works.
type panicStore struct {
	*fakeStore
	calls atomic.Int32
}

func (s *panicStore) AppendEvent(ev cache.Event) error {
	if s.calls.Add(1) == 1 {
		panic("injected: damaged page")
	}
	return s.fakeStore.AppendEvent(ev)
}

// A store that panics costs the event it was writing (counted as an
// event error and a recovered panic), not the writer: later events are
// still stored and Close still returns.
func TestEventWriterSurvivesPanic(t *testing.T) {
	store := &panicStore{fakeStore: newFakeStore()}
	f := newFixtureStore(t, store)
	for _, mac := range []string{"aabbcc000001", "aabbcc000002", "aabbcc000003"} {
		f.serve(t, mabRequest(t, mac))
	}
	f.close(t)
	if got := len(store.eventTypes()); got != 2 {
		t.Fatalf("%d events stored, want 2 (the first lost to the panic)", got)
	}
	const want = `
		# HELP mxedge_panics_total Panics recovered in background goroutines, which then restart.
		# TYPE mxedge_panics_total counter
		mxedge_panics_total{component="nac",goroutine="event_writer"} 1
		mxedge_panics_total{component="nac",goroutine="session_sweeper"} 0
		# HELP mxedge_nac_event_errors_total NAC events the store refused to keep.
		# TYPE mxedge_nac_event_errors_total counter
		mxedge_nac_event_errors_total 1
`
	if err := testutil.GatherAndCompare(f.reg, strings.NewReader(want), "mxedge_panics_total", "mxedge_nac_event_errors_total"); err != nil {
		t.Fatal(err)
	}
}
