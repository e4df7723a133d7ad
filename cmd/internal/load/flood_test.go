package load

import (
	"context"
	"net"
	"os"
	"testing"
	"time"
)

func TestFloodIsBoundedAndSendsFromSource(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	res, err := Flood(context.Background(), FloodSpec{
		Source: "127.0.0.2:0", Target: pc.LocalAddr().String(),
		Datagram: make([]byte, 20), Workers: 2, Count: 50, Duration: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent+res.Errors != 50 {
		t.Fatalf("sent %d + %d errors, want 50 in all", res.Sent, res.Errors)
	}
	pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	_, from, err := pc.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	if got := from.(*net.UDPAddr).IP.String(); got != "127.0.0.2" {
		t.Fatalf("flood came from %s, want 127.0.0.2", got)
	}
}

func TestFloodRefusesAnUnboundedSpec(t *testing.T) {
	if _, err := Flood(context.Background(), FloodSpec{Target: "127.0.0.1:1", Datagram: make([]byte, 20), Workers: 1}); err == nil {
		t.Fatal("a flood without count and duration was accepted")
	}
}

func TestRSS(t *testing.T) {
	n, err := RSS(os.Getpid())
	if err != nil || n <= 0 {
		t.Fatalf("RSS = %d, %v", n, err)
	}
}
