package eapload

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mxedge/mxedge/edge/nac/eaptls/eaptlstest"
	"github.com/mxedge/mxedge/proxy/packet"
)

// maxRounds bounds one conversation; EAP-TLS needs under a dozen.
const maxRounds = 64

// Spec is one bounded run: Concurrency workers, each with its own UDP
// socket, run whole authentications until Count have started or Duration
// passes.
type Spec struct {
	Target      string // host:port of the RADIUS auth listener
	Secret      []byte
	Concurrency int
	Count       int
	Duration    time.Duration
	// Timeout bounds the wait for each reply (default 2 s); a lost reply
	// fails the authentication (no retransmission).
	Timeout    time.Duration
	ClientCert tls.Certificate
	RootCAs    *x509.CertPool
	ServerName string // default "localhost"
	// Version pins TLS 1.2 or 1.3; 0 lets them negotiate.
	Version uint16
	// Identity is the outer identity (default "anonymous@example.org").
	Identity string
	// FramedMTU, when set, is sent in each request (and sizes our own
	// fragments); the default sends none and fragments at 1020.
	FramedMTU int
}

// Result is what a run measured.
type Result struct {
	Auths    int // Access-Accept with matching MPPE keys
	Failures int // rejects, timeouts, protocol errors, key mismatches
	Rejects  int // of Failures: Access-Reject
	Lost     int // of Failures: no reply in time
	Elapsed  time.Duration
	// Latencies of successful authentications, sorted.
	Latencies []time.Duration
	// FirstError describes the first failure, for a failing bench.
	FirstError error
}

// Rate is successful authentications per second.
func (r Result) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Auths) / r.Elapsed.Seconds()
}

// Quantile returns the q-quantile latency of successful authentications.
func (r Result) Quantile(q float64) time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	return r.Latencies[int(q*float64(len(r.Latencies)-1))]
}

var (
	errReject   = errors.New("Access-Reject")
	errLost     = errors.New("no reply")
	errMPPE     = errors.New("MS-MPPE keys do not match the supplicant's MSK")
	errNoMPPE   = errors.New("Access-Accept without MS-MPPE keys")
	errTooLong  = errors.New("conversation did not end")
	errNotAuthd = errors.New("Access-Accept but the supplicant saw no EAP-Success")
)

// RunEAPTLS runs spec and waits for it to finish.
func RunEAPTLS(ctx context.Context, spec Spec) (Result, error) {
	if spec.Concurrency <= 0 || spec.Count <= 0 || spec.Duration <= 0 {
		return Result{}, errors.New("eapload: Concurrency, Count and Duration must be positive")
	}
	if spec.Timeout == 0 {
		spec.Timeout = 2 * time.Second
	}
	if spec.ServerName == "" {
		spec.ServerName = "localhost"
	}
	if spec.Identity == "" {
		spec.Identity = "anonymous@example.org"
	}
	ctx, cancel := context.WithTimeout(ctx, spec.Duration)
	defer cancel()
	tc := &tls.Config{
		Certificates: []tls.Certificate{spec.ClientCert},
		RootCAs:      spec.RootCAs,
		ServerName:   spec.ServerName,
		// The groups OpenSSL 3.0's supplicants offer first. Go would
		// offer X25519MLKEM768 first, which mxedge accepts and FreeRADIUS
		// on OpenSSL 3.0 cannot: the two servers would do different key
		// exchanges, and the field's laptops do the classical one today.
		CurvePreferences: []tls.CurveID{tls.X25519, tls.CurveP256},
	}
	var (
		started atomic.Int64
		mu      sync.Mutex
		res     Result
		wg      sync.WaitGroup
	)
	conns := make([]net.Conn, 0, spec.Concurrency)
	for range spec.Concurrency {
		c, err := net.Dial("udp", spec.Target)
		if err != nil {
			for _, c := range conns {
				c.Close()
			}
			return Result{}, err
		}
		conns = append(conns, c)
	}
	start := time.Now()
	for w, conn := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer conn.Close()
			wk := &worker{spec: &spec, tls: tc, conn: conn, id: uint8(w * 37),
				buf: make([]byte, packet.MaxLen), mac: fmt.Sprintf("02:ea:00:00:%02x:%02x", w>>8&0xff, w&0xff)}
			var local Result
			for ctx.Err() == nil && started.Add(1) <= int64(spec.Count) {
				t0 := time.Now()
				err := wk.authenticate(ctx)
				switch {
				case err == nil:
					local.Auths++
					local.Latencies = append(local.Latencies, time.Since(t0))
					continue
				case ctx.Err() != nil:
					// The run ended mid-conversation: not the server's failure.
				case errors.Is(err, errReject):
					local.Failures++
					local.Rejects++
				case errors.Is(err, errLost):
					local.Failures++
					local.Lost++
				default:
					local.Failures++
				}
				if local.FirstError == nil && ctx.Err() == nil {
					local.FirstError = err
				}
			}
			mu.Lock()
			res.Auths += local.Auths
			res.Failures += local.Failures
			res.Rejects += local.Rejects
			res.Lost += local.Lost
			res.Latencies = append(res.Latencies, local.Latencies...)
			if res.FirstError == nil {
				res.FirstError = local.FirstError
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	slices.Sort(res.Latencies)
	return res, nil
}

type worker struct {
	spec *Spec
	tls  *tls.Config
	conn net.Conn
	id   uint8
	buf  []byte
	req  []byte
	mac  string
}

// authenticate runs one whole conversation.
func (w *worker) authenticate(ctx context.Context) error {
	frag := 0
	if w.spec.FramedMTU > 0 {
		frag = w.spec.FramedMTU - 14
	}
	peer := eaptlstest.New(eaptlstest.Config{TLS: w.tls, Version: w.spec.Version, FragmentSize: frag, Identity: w.spec.Identity})
	defer peer.Close()
	resp := peer.IdentityResponse(0)
	var state []byte
	for range maxRounds {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		auth := packet.RandomAuthenticator()
		w.id++
		w.req = w.encode(w.req[:0], auth, resp, state)
		reply, err := w.exchange(auth)
		if err != nil {
			return err
		}
		var msg []byte
		for _, a := range reply.Attrs {
			if a.Type == packet.AttrEAPMessage {
				msg = append(msg, a.Value...)
			}
		}
		switch reply.Code {
		case packet.CodeAccessChallenge:
			st, ok := reply.Lookup(packet.AttrState)
			if !ok {
				return errors.New("Access-Challenge without State")
			}
			state = append(state[:0], st...)
			if resp, err = peer.Handle(msg); err != nil {
				return fmt.Errorf("supplicant: %w", err)
			}
		case packet.CodeAccessAccept:
			if _, err := peer.Handle(msg); err != nil {
				return fmt.Errorf("supplicant on Accept: %w", err)
			}
			if !peer.Succeeded() {
				return errNotAuthd
			}
			return w.checkMPPE(reply, auth, peer)
		case packet.CodeAccessReject:
			return fmt.Errorf("%w (supplicant: %v)", errReject, peer.HandshakeErr())
		default:
			return fmt.Errorf("unexpected %s", reply.Code)
		}
	}
	return errTooLong
}

func (w *worker) encode(b []byte, auth [16]byte, eapMsg, state []byte) []byte {
	b = packet.Append(b, packet.CodeAccessRequest, w.id, auth)
	b = packet.AppendMessageAuthenticator(b)
	b, _ = packet.AppendAttr(b, packet.AttrUserName, []byte(w.spec.Identity))
	b, _ = packet.AppendAttr(b, packet.AttrCallingStationID, []byte(w.mac))
	b, _ = packet.AppendAttr(b, packet.AttrNASIPAddress, []byte{127, 0, 0, 1})
	b, _ = packet.AppendAttr(b, packet.AttrNASPortType, []byte{0, 0, 0, 19}) // Wireless-802.11
	if w.spec.FramedMTU > 0 {
		m := w.spec.FramedMTU
		b, _ = packet.AppendAttr(b, packet.AttrFramedMTU, []byte{byte(m >> 24), byte(m >> 16), byte(m >> 8), byte(m)})
	}
	if state != nil {
		b, _ = packet.AppendAttr(b, packet.AttrState, state)
	}
	for len(eapMsg) > 0 {
		n := min(len(eapMsg), 253)
		b, _ = packet.AppendAttr(b, packet.AttrEAPMessage, eapMsg[:n])
		eapMsg = eapMsg[n:]
	}
	_ = packet.Sign(b, w.spec.Secret, nil)
	return b
}

// exchange sends w.req and returns the verified reply with its identifier.
func (w *worker) exchange(auth [16]byte) (*packet.Packet, error) {
	if _, err := w.conn.Write(w.req); err != nil {
		return nil, err
	}
	w.conn.SetReadDeadline(time.Now().Add(w.spec.Timeout))
	for {
		n, err := w.conn.Read(w.buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return nil, errLost
			}
			return nil, err
		}
		p, err := packet.Parse(w.buf[:n])
		if err != nil || p.ID != w.id {
			continue // late answer to an abandoned request
		}
		hasMA, err := packet.VerifyResponse(p, auth, w.spec.Secret)
		if err != nil {
			return nil, fmt.Errorf("reply does not verify: %w", err)
		}
		if !hasMA {
			return nil, errors.New("reply without Message-Authenticator")
		}
		return p, nil
	}
}

// checkMPPE decrypts MS-MPPE-Recv/Send-Key and compares them with the
// supplicant's MSK (RFC 5216 §2.3: Recv = MSK[0:32], Send = MSK[32:64]).
func (w *worker) checkMPPE(p *packet.Packet, auth [16]byte, peer *eaptlstest.Supplicant) error {
	keys, err := peer.Keys()
	if err != nil {
		return err
	}
	var found int
	for _, a := range p.Attrs {
		if a.Type != packet.AttrVendorSpecific {
			continue
		}
		vs, ok := packet.ParseVSA(a.Value, nil)
		if !ok || len(vs) != 1 || vs[0].Vendor != packet.VendorMicrosoft {
			continue
		}
		var want []byte
		switch vs[0].Type {
		case packet.MSMPPERecvKey:
			want = keys.MSK[:32]
		case packet.MSMPPESendKey:
			want = keys.MSK[32:64]
		default:
			continue
		}
		pt, err := packet.SaltDecrypt(nil, vs[0].Value, w.spec.Secret, auth)
		if err != nil || int(pt[0]) != len(want) || !bytes.Equal(pt[1:1+len(want)], want) {
			return errMPPE
		}
		found++
	}
	if found != 2 {
		return errNoMPPE
	}
	return nil
}

// String is a one-line summary for bench output.
func (r Result) String() string {
	return fmt.Sprintf("%d auths in %s (%.0f/s), %d failures (%d rejects, %d lost), p50 %s p99 %s",
		r.Auths, r.Elapsed.Round(time.Millisecond), r.Rate(), r.Failures, r.Rejects, r.Lost,
		r.Quantile(0.5).Round(10*time.Microsecond), r.Quantile(0.99).Round(10*time.Microsecond))
}
