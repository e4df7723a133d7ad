package edge

import (
	"context"
	"crypto/rand"
	"errors"
	"net"
	"net/netip"
	"time"

	"github.com/mxedge/mxedge/edge/internal/notify"
	"github.com/mxedge/mxedge/proxy"
	"github.com/mxedge/mxedge/proxy/packet"
)

// selfCheckAddr is the loopback source the watchdog's self-check sends
// from. It gets its own client entry with a random per-process secret, so
// it opens nothing to anyone else.
var selfCheckAddr = netip.MustParseAddr("127.77.0.1")

// selfCheckClient returns the internal client entry for the watchdog.
func selfCheckClient(secret []byte) *proxy.Client {
	return &proxy.Client{
		Name: "self-check", Prefix: netip.PrefixFrom(selfCheckAddr, 32), Secret: secret,
		Vendor: "generic", RequireMessageAuthenticator: true,
	}
}

func newSelfCheckSecret() []byte {
	b := make([]byte, 32)
	rand.Read(b)
	return b
}

// runWatchdog pings systemd's watchdog only after a Status-Server sent to
// each auth listener came back: the ping proves that packets are read,
// checked, answered and written, not merely that a goroutine is alive.
func (a *App) runWatchdog(ctx context.Context) {
	iv, ok := notify.WatchdogInterval()
	if !ok {
		return
	}
	p := notify.NewPinger(a.log, "udp-self-check")
	t := time.NewTicker(iv / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := a.selfCheck(iv / 4); err != nil {
				a.log.Warn("self-check failed; withholding the watchdog ping", "err", err)
				continue
			}
			p.Progress("udp-self-check")
			if _, err := p.Ping(); err != nil {
				a.log.Warn("watchdog ping", "err", err)
			}
		}
	}
}

// selfCheck sends one Status-Server to every auth listener it can reach
// from loopback and waits for the answers.
func (a *App) selfCheck(timeout time.Duration) error {
	for _, addr := range a.AuthAddrs() {
		ua, ok := addr.(*net.UDPAddr)
		if !ok {
			continue
		}
		ip, _ := netip.AddrFromSlice(ua.IP)
		ip = ip.Unmap()
		switch {
		case ip.IsUnspecified():
			ip = netip.MustParseAddr("127.0.0.1")
		case !ip.IsLoopback() || !ip.Is4():
			continue // not reachable from our reserved source; nothing to prove
		}
		if err := statusRoundTrip(netip.AddrPortFrom(ip, uint16(ua.Port)), a.selfSecret, timeout); err != nil {
			return err
		}
	}
	return nil
}

func statusRoundTrip(to netip.AddrPort, secret []byte, timeout time.Duration) error {
	c, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(selfCheckAddr, 0)), net.UDPAddrFromAddrPort(to))
	if err != nil {
		return err
	}
	defer c.Close()
	req := packet.NewStatusServer(nil, 0, secret)
	if _, err := c.Write(req); err != nil {
		return err
	}
	c.SetReadDeadline(time.Now().Add(timeout))
	buf := make([]byte, packet.MaxLen)
	n, err := c.Read(buf)
	if err != nil {
		return err
	}
	p, err := packet.Parse(buf[:n])
	if err != nil {
		return err
	}
	if _, err := packet.VerifyResponse(p, [16]byte(req[4:20]), secret); err != nil {
		return err
	}
	if p.Code != packet.CodeAccessAccept {
		return errors.New("self-check: Status-Server not accepted")
	}
	return nil
}
