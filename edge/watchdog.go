package edge

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/mxedge/mxedge/cloudlink"
	"github.com/mxedge/mxedge/edge/internal/notify"
	"github.com/mxedge/mxedge/proxy"
	"github.com/mxedge/mxedge/proxy/packet"
)

// selfCheckAddr and selfCheckAddr6 are the loopback sources the
// watchdog's self-check sends from, one per address family. They get their
// own client entries with a random per-process secret, so they open
// nothing to anyone else; an operator's client on either address wins, and
// the listeners of that family then go unchecked (logged).
var (
	selfCheckAddr  = netip.MustParseAddr("127.77.0.1")
	selfCheckAddr6 = netip.IPv6Loopback()
)

// selfCheckClient returns the internal client entry for the watchdog.
func selfCheckClient(secret []byte) *proxy.Client {
	return selfCheckClientAt(selfCheckAddr, secret)
}

func selfCheckClientAt(addr netip.Addr, secret []byte) *proxy.Client {
	return &proxy.Client{
		Name: "self-check", Prefix: netip.PrefixFrom(addr, addr.BitLen()), Secret: secret,
		Vendor: "generic", RequireMessageAuthenticator: true,
	}
}

func newSelfCheckSecret() []byte {
	b := make([]byte, 32)
	rand.Read(b)
	return b
}

// runWatchdog pings systemd's watchdog only when the daemon proves
// progress: a Status-Server sent to each auth listener came back (packets
// are read, checked, answered and written, not merely a goroutine alive),
// and every loop that does the work and registered with a.beats (UDP
// readers, the RadSec pool's loops) beat within its deadline or is idle
// waiting for work.
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
			if err := a.watchdogCheck(iv / 4); err != nil {
				a.log.Warn("withholding the watchdog ping", "err", err)
				continue
			}
			p.Progress("udp-self-check")
			if _, err := p.Ping(); err != nil {
				a.log.Warn("watchdog ping", "err", err)
			}
		}
	}
}

// watchdogCheck is what a ping needs: every working loop well, every
// listener answering.
func (a *App) watchdogCheck(timeout time.Duration) error {
	if stalled := a.beats.Stalled(); len(stalled) > 0 {
		return fmt.Errorf("loops made no progress: %s", strings.Join(stalled, ", "))
	}
	return a.selfCheck(timeout)
}

// newBeats is the heartbeat registry when systemd runs a watchdog on us.
func newBeats() *notify.Heartbeats {
	if _, ok := notify.WatchdogInterval(); !ok {
		return nil
	}
	return notify.NewHeartbeats(time.Now)
}

// heartbeat registers a working loop with a.beats. A busy loop must beat
// within half the watchdog interval: well past any bounded wait of ours
// (a dial, a write deadline, an fsync), and early enough that the ping
// after it is withheld before systemd's deadline.
// Without a watchdog a.beats is nil and so is the *Loop, which does
// nothing.
func (a *App) heartbeat(loop string) proxy.Heartbeat {
	iv, _ := notify.WatchdogInterval()
	return a.beats.Register(loop, iv/2)
}

// selfCheck sends one Status-Server to every auth listener and waits for
// the answers. A listener on a wildcard address is reached through
// loopback of its family (a dual-stack [::] socket through IPv4), one on a
// LAN address at that address itself: the kernel delivers it over
// loopback, to the listener's own socket.
func (a *App) selfCheck(timeout time.Duration) error {
	for _, addr := range a.AuthAddrs() {
		ua, ok := addr.(*net.UDPAddr)
		if !ok {
			continue
		}
		from, to := selfCheckRoute(ua.AddrPort())
		if c := a.clients.Load().Lookup(from); c == nil || c.Name != "self-check" {
			// The operator's client on our source: nothing we can sign.
			a.selfCheckSkipped(to)
			continue
		}
		if err := statusRoundTrip(from, to, a.selfSecret, timeout); err != nil {
			return fmt.Errorf("self-check of %s: %w", to, err)
		}
	}
	return nil
}

// selfCheckRoute is where the self-check of a listener bound at l is sent
// from and to.
func selfCheckRoute(l netip.AddrPort) (from netip.Addr, to netip.AddrPort) {
	ip := l.Addr().Unmap()
	switch {
	case ip.IsUnspecified():
		// 0.0.0.0, and [::] (dual-stack on Linux unless bindv6only)
		ip = netip.MustParseAddr("127.0.0.1")
	case ip.Is6():
		return selfCheckAddr6, netip.AddrPortFrom(ip.WithZone(l.Addr().Zone()), l.Port())
	}
	return selfCheckAddr, netip.AddrPortFrom(ip, l.Port())
}

func statusRoundTrip(from netip.Addr, to netip.AddrPort, secret []byte, timeout time.Duration) error {
	c, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(from, 0)), net.UDPAddrFromAddrPort(to))
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

// selfCheckSkipped logs, once per listener, that the operator's client on
// the self-check source leaves it unchecked.
func (a *App) selfCheckSkipped(to netip.AddrPort) {
	if _, seen := a.unchecked.LoadOrStore(to, true); !seen {
		a.log.Warn("watchdog self-check cannot reach this listener: a radius client is configured on its source address",
			"listener", to, "source", selfCheckAddrFor(to.Addr()))
	}
}

func selfCheckAddrFor(to netip.Addr) netip.Addr {
	if to.Is6() {
		return selfCheckAddr6
	}
	return selfCheckAddr
}

// syncerHeartbeat registers a cloudlink loop. A round is a few API calls,
// each bounded by the client's timeout (30 s), longer than half the
// watchdog interval: its deadline is five minutes, so a wedged syncer
// costs a restart, a slow cloud does not.
func (a *App) syncerHeartbeat(loop string) cloudlink.LoopHeartbeat {
	iv, _ := notify.WatchdogInterval()
	return a.beats.Register(loop, max(iv/2, syncerRoundLimit))
}

const syncerRoundLimit = 5 * time.Minute
