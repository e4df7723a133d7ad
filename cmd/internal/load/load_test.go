package load

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/mxedge/mxedge/proxy/packet"
)

// respond answers every Access-Request on pc with a signed Access-Accept,
// except every dropEvery-th one (0: none), until pc is closed.
func respond(t *testing.T, pc net.PacketConn, secret []byte, dropEvery int) {
	buf := make([]byte, packet.MaxLen)
	for n := 1; ; n++ {
		m, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		req, err := packet.Parse(buf[:m])
		if err != nil {
			t.Errorf("load tool sent an unparsable request: %v", err)
			return
		}
		if _, err := packet.VerifyRequest(req, secret); err != nil {
			t.Errorf("load tool's request does not verify: %v", err)
			return
		}
		if dropEvery > 0 && n%dropEvery == 0 {
			continue
		}
		b := packet.Append(nil, packet.CodeAccessAccept, req.ID, req.Authenticator)
		b = packet.AppendMessageAuthenticator(b)
		if err := packet.Sign(b, secret, &req.Authenticator); err != nil {
			t.Error(err)
			return
		}
		pc.WriteTo(b, from)
	}
}

func TestRunLoadCountsEveryRequest(t *testing.T) {
	for _, tc := range []struct {
		name      string
		dropEvery int
	}{{"all answered", 0}, {"some lost", 50}} {
		t.Run(tc.name, func(t *testing.T) {
			pc, err := net.ListenPacket("udp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer pc.Close()
			secret := []byte("load-test")
			go respond(t, pc, secret, tc.dropEvery)
			spec := LoadSpec{Target: pc.LocalAddr().String(), Secret: secret, Concurrency: 4, Count: 1000,
				Duration: 20 * time.Second, Timeout: 100 * time.Millisecond, MACs: []string{"aabbcc000001", "aabbcc000002"}}
			res, err := RunLoad(context.Background(), spec)
			if err != nil {
				t.Fatal(err)
			}
			wantLost := 0
			if tc.dropEvery > 0 {
				wantLost = spec.Count / tc.dropEvery
			}
			if res.Sent != spec.Count || res.Lost != wantLost || res.Answered != spec.Count-wantLost ||
				res.Rejected != 0 || len(res.Latencies) != res.Answered {
				t.Fatalf("sent %d answered %d lost %d rejected %d latencies %d; want %d sent, %d lost",
					res.Sent, res.Answered, res.Lost, res.Rejected, len(res.Latencies), spec.Count, wantLost)
			}
			if res.Quantile(0) <= 0 || res.Quantile(0.99) > res.Max() {
				t.Fatalf("latencies out of order: min %v p99 %v max %v", res.Quantile(0), res.Quantile(0.99), res.Max())
			}
		})
	}
}
