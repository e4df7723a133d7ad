//go:build !linux

package udp

import (
	"errors"
	"net"
	"net/netip"
)

func enablePktinfo(*net.UDPConn, bool) error {
	return errors.New("per-datagram destination addresses are implemented on Linux only")
}

func parseDst([]byte) (netip.Addr, bool) { return netip.Addr{}, false }

func appendSrc(b []byte, _ netip.Addr, _ bool) []byte { return b }
