package nac_test

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/mxedge/mxedge/cache"
	"github.com/mxedge/mxedge/edge/nac"
	"github.com/mxedge/mxedge/proxy"
	"github.com/mxedge/mxedge/proxy/packet"
)

// gatedStore commits a batch of events only when the test opens the gate.
type gatedStore struct {
	*fakeStore
	gate chan struct{}
	mu   sync.Mutex
	n    int // events committed
}

func (s *gatedStore) EncodeEventFields(ev cache.Event, fs []cache.Field) (cache.EncodedEvent, error) {
	return cache.EncodedEvent{}, nil
}

func (s *gatedStore) AppendEncoded(evs []cache.EncodedEvent) error {
	<-s.gate
	s.mu.Lock()
	s.n += len(evs)
	s.mu.Unlock()
	return nil
}

func (s *gatedStore) committed() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// TestEventsCommittedBeforeAnswer: by default a MAB answer waits for its
// event's commit (and a MAB request is not answered inline on the
// reader's goroutine); with BatchedEvents it goes out at once.
func TestEventsCommittedBeforeAnswer(t *testing.T) {
	for _, batched := range []bool{false, true} {
		name := "durable"
		if batched {
			name = "batched"
		}
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				st := &gatedStore{fakeStore: newFakeStore(), gate: make(chan struct{})}
				f := newFixtureStore(t, st, func(c *nac.Config) { c.BatchedEvents = batched })
				raw := request(t, packet.CodeAccessRequest, 1, nil,
					attr{packet.AttrUserName, []byte("aabbcc000009")}, attr{packet.AttrUserPassword, []byte("aabbcc000009")},
					attr{packet.AttrCallingStationID, []byte("aabbcc000009")})
				p, err := packet.Parse(raw)
				if err != nil {
					t.Fatal(err)
				}
				req := &proxy.Request{Packet: p, Client: f.client, HasMessageAuthenticator: true}
				if in := f.a.Inline(req); in != batched {
					t.Fatalf("Inline %v, want %v", in, batched)
				}
				var answered sync.WaitGroup
				answered.Add(1)
				var out []byte
				go func() {
					defer answered.Done()
					out, _ = f.a.ServeRADIUS(context.Background(), req)
				}()
				synctest.Wait()
				if batched {
					answered.Wait()
					if st.committed() != 0 {
						t.Fatal("committed through a closed gate")
					}
				} else if out != nil {
					t.Fatal("answered before the event was committed")
				}
				close(st.gate)
				answered.Wait()
				if out == nil {
					t.Fatal("no answer")
				}
				if !batched && st.committed() != 1 {
					t.Fatalf("answered with %d events committed, want 1", st.committed())
				}
			})
		})
	}
}
