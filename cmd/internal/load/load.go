package load

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mxedge/mxedge/proxy/packet"
)

// LoadSpec is one bounded load run: MAB Access-Requests, each with a
// Message-Authenticator, from Concurrency workers each owning a UDP socket,
// until Count requests are sent or Duration passes.
type LoadSpec struct {
	Target      string
	Secret      []byte
	Concurrency int
	Count       int
	Duration    time.Duration
	Timeout     time.Duration
	// MACs are cycled through as the MAB identities.
	MACs []string
	// Pace, if set, is each worker's pause between requests, to stretch a
	// stream over an event such as an upstream restart.
	Pace time.Duration
}

// LoadResult is what a run measured.
type LoadResult struct {
	Sent, Answered, Lost, Rejected int
	Elapsed                        time.Duration
	Latencies                      []time.Duration
	// End is when the last worker finished.
	End time.Time
}

// Rate is answered requests per second.
func (r LoadResult) Rate() float64 { return float64(r.Answered) / r.Elapsed.Seconds() }

// Quantile returns the q-quantile latency.
func (r LoadResult) Quantile(q float64) time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	i := int(q * float64(len(r.Latencies)-1))
	return r.Latencies[i]
}

// Max returns the largest latency.
func (r LoadResult) Max() time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	return r.Latencies[len(r.Latencies)-1]
}

// MABRequest encodes a Cisco-style MAB Access-Request.
func MABRequest(dst []byte, id uint8, mac string, secret []byte) []byte {
	return newMABEncoder().request(dst, id, mac, dashed(mac), secret)
}

// mabEncoder encodes MAB requests without allocating: a load worker's
// garbage made the load generator collect ten times a second, and each
// stop-the-world pause on cores shared with the server landed in the
// latencies it measures.
type mabEncoder struct {
	pw  [16]byte
	rng *rand.ChaCha8 // request authenticators
}

func newMABEncoder() *mabEncoder {
	var seed [32]byte
	_, _ = crand.Read(seed[:])
	return &mabEncoder{rng: rand.NewChaCha8(seed)}
}

func (e *mabEncoder) request(dst []byte, id uint8, mac, dashedMAC string, secret []byte) []byte {
	var auth [16]byte
	_, _ = e.rng.Read(auth[:])
	dst = packet.Append(dst[:0], packet.CodeAccessRequest, id, auth)
	dst = packet.AppendMessageAuthenticator(dst)
	dst, _ = packet.AppendAttr(dst, packet.AttrUserName, []byte(mac))
	pw, _ := packet.EncryptUserPassword(e.pw[:0], []byte(mac), secret, auth)
	dst, _ = packet.AppendAttr(dst, packet.AttrUserPassword, pw)
	dst, _ = packet.AppendAttr(dst, packet.AttrServiceType, []byte{0, 0, 0, 10})
	dst, _ = packet.AppendAttr(dst, packet.AttrNASPortType, []byte{0, 0, 0, 15})
	dst, _ = packet.AppendAttr(dst, packet.AttrCallingStationID, []byte(dashedMAC))
	dst, _ = packet.AppendAttr(dst, packet.AttrNASIPAddress, []byte{127, 0, 0, 1})
	_ = packet.Sign(dst, secret, nil)
	return dst
}

func dashed(mac string) string {
	var b strings.Builder
	for i := 0; i+2 <= len(mac); i += 2 {
		if i > 0 {
			b.WriteByte('-')
		}
		b.WriteString(strings.ToUpper(mac[i : i+2]))
	}
	return b.String()
}

// RunLoad sends spec's load and waits for it to finish. Every loop is
// bounded by spec.Count and spec.Duration.
func RunLoad(ctx context.Context, spec LoadSpec) (LoadResult, error) {
	if spec.Timeout == 0 {
		spec.Timeout = 2 * time.Second
	}
	if len(spec.MACs) == 0 {
		return LoadResult{}, errors.New("no MACs to send")
	}
	ctx, cancel := context.WithTimeout(ctx, spec.Duration)
	defer cancel()
	var (
		sent     atomic.Int64
		mu       sync.Mutex
		res      LoadResult
		wg       sync.WaitGroup
		firstErr error
	)
	// One slot per request, indexed by its sequence number: workers that
	// took more than their share grew their own slices mid-run, and the
	// garbage made the load tool collect while it measured.
	lat := make([]time.Duration, spec.Count)
	dashedMACs := make([]string, len(spec.MACs))
	for i, m := range spec.MACs {
		dashedMACs[i] = dashed(m)
	}
	start := time.Now()
	for w := 0; w < spec.Concurrency; w++ {
		conn, err := net.Dial("udp", spec.Target)
		if err != nil {
			return res, err
		}
		wg.Add(1)
		go func(w int, conn net.Conn) {
			defer wg.Done()
			defer conn.Close()
			var answered, lost, rejected int
			req := make([]byte, 0, 256)
			buf := make([]byte, packet.MaxLen)
			enc := newMABEncoder()
			var reply packet.Packet
			id := uint8(w)
			for ctx.Err() == nil {
				if spec.Pace > 0 {
					select {
					case <-ctx.Done():
					case <-time.After(spec.Pace):
					}
				}
				n := sent.Add(1)
				if n > int64(spec.Count) {
					break
				}
				id++
				i := int(n) % len(spec.MACs)
				req = enc.request(req, id, spec.MACs[i], dashedMACs[i], spec.Secret)
				t0 := time.Now()
				if _, err := conn.Write(req); err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					return
				}
				conn.SetReadDeadline(t0.Add(spec.Timeout))
				for {
					m, err := conn.Read(buf)
					if err != nil {
						lost++
						break
					}
					if err := reply.Parse(buf[:m]); err != nil || reply.ID != id {
						continue // a late answer to an earlier request
					}
					if _, err := packet.VerifyResponse(&reply, [16]byte(req[4:20]), spec.Secret); err != nil {
						continue
					}
					lat[n-1] = time.Since(t0)
					answered++
					if reply.Code != packet.CodeAccessAccept {
						rejected++
					}
					break
				}
			}
			mu.Lock()
			res.Answered += answered
			res.Lost += lost
			res.Rejected += rejected
			mu.Unlock()
		}(w, conn)
	}
	wg.Wait()
	res.End = time.Now()
	res.Latencies = make([]time.Duration, 0, res.Answered)
	for _, d := range lat {
		if d > 0 { // not sent, or not answered
			res.Latencies = append(res.Latencies, d)
		}
	}
	res.Elapsed = res.End.Sub(start)
	res.Sent = res.Answered + res.Lost
	slices.Sort(res.Latencies)
	return res, firstErr
}

// CPUTime returns the user+system CPU time a process has used so far, from
// /proc/PID/stat (clock ticks of 10 ms on Linux).
func CPUTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	// The command name may hold spaces: fields start after the last ')'.
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("bad stat")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, errors.New("short stat")
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond, nil
}
