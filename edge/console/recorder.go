package console

import (
	"strings"
	"sync"
	"time"
)

// Decision is one NAC decision as the console shows it.
type Decision struct {
	Seq      uint64    `json:"seq"` // increases by one per decision; live updates ask for those after one
	Time     time.Time `json:"time"`
	MAC      string    `json:"mac"` // as FormatMAC writes it
	Identity string    `json:"identity,omitempty"`
	Client   string    `json:"client,omitempty"` // the switch or AP (RADIUS client name)
	Method   string    `json:"method"`           // mab, eap-tls, eap, password
	Result   string    `json:"result"`           // accept, reject
	VLAN     string    `json:"vlan,omitempty"`
	Source   string    `json:"source"` // cloud, cache, default, none
	Reason   string    `json:"reason,omitempty"`
}

// DefaultRecorderSize is how many decisions a Recorder keeps by default.
const DefaultRecorderSize = 10000

// Recorder keeps the last decisions in a ring. Record is called on the
// request path, so it only copies the decision under a mutex; the cost of
// searching falls on the page loads.
type Recorder struct {
	mu   sync.Mutex
	ring []Decision
	next uint64 // Seq of the next decision; the ring holds min(next, len) of them
}

// NewRecorder keeps the last size decisions (DefaultRecorderSize if size <= 0).
func NewRecorder(size int) *Recorder {
	if size <= 0 {
		size = DefaultRecorderSize
	}
	return &Recorder{ring: make([]Decision, size), next: 1}
}

// Record adds d, giving it the next sequence number.
func (r *Recorder) Record(d Decision) {
	r.mu.Lock()
	d.Seq = r.next
	r.ring[r.next%uint64(len(r.ring))] = d
	r.next++
	r.mu.Unlock()
}

// Len is how many decisions are held.
func (r *Recorder) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return int(min(r.next-1, uint64(len(r.ring))))
}

// Last is the sequence number of the newest decision, 0 before any.
func (r *Recorder) Last() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.next - 1
}

// Filter selects decisions. Empty fields match everything.
type Filter struct {
	MAC      string // exact, as FormatMAC writes it
	Identity string // case-insensitive substring
	After    uint64 // only decisions with a larger Seq
}

func (f Filter) match(d *Decision) bool {
	if f.MAC != "" && d.MAC != f.MAC {
		return false
	}
	if f.Identity != "" && !containsFold(d.Identity, f.Identity) {
		return false
	}
	return true
}

// containsFold is a case-insensitive strings.Contains that allocates only
// when s has upper case letters.
func containsFold(s, sub string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' || c >= 0x80 {
			return strings.Contains(strings.ToLower(s), sub)
		}
	}
	return strings.Contains(s, sub)
}

// Recent returns up to limit decisions matching f, newest first. It
// scans under the lock, copying only the matches: comparing strings is
// cheaper than copying the ring, and keeps Record's wait short.
func (r *Recorder) Recent(f Filter, limit int) []Decision {
	f.Identity = strings.ToLower(f.Identity)
	limit = max(limit, 0)
	r.mu.Lock()
	defer r.mu.Unlock()
	last := r.next - 1
	first := last - min(last, uint64(len(r.ring))) // exclusive
	first = max(first, f.After)
	out := make([]Decision, 0, min(uint64(limit), last-min(first, last)))
	for seq := last; seq > first && len(out) < limit; seq-- {
		d := &r.ring[seq%uint64(len(r.ring))]
		if f.match(d) {
			out = append(out, *d)
		}
	}
	return out
}
