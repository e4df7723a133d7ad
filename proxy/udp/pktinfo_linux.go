//go:build linux

package udp

import (
	"encoding/binary"
	"net"
	"net/netip"

	"golang.org/x/sys/unix"
)

// enablePktinfo asks the kernel to report each datagram's destination
// address. On a dual-stack AF_INET6 socket IPV6_RECVPKTINFO covers IPv4
// too, as v4-mapped addresses.
func enablePktinfo(c *net.UDPConn, v6 bool) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		if v6 {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1)
		} else {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
		}
	})
	if err != nil {
		return err
	}
	return serr
}

// cmsgLen reads a control message header's length field, which is as
// wide as a size_t.
func cmsgLen(b []byte) int {
	if unix.SizeofCmsghdr == 16 {
		return int(binary.NativeEndian.Uint64(b))
	}
	return int(binary.NativeEndian.Uint32(b))
}

// parseDst finds the destination address in a datagram's control
// messages (IP_PKTINFO's ipi_addr or IPV6_PKTINFO's ipi6_addr), without
// allocating: it runs for every datagram on a wildcard socket.
func parseDst(oob []byte) (netip.Addr, bool) {
	for len(oob) >= unix.SizeofCmsghdr {
		l := cmsgLen(oob)
		if l < unix.SizeofCmsghdr || l > len(oob) {
			return netip.Addr{}, false
		}
		level := int32(binary.NativeEndian.Uint32(oob[unix.SizeofCmsghdr-8:]))
		typ := int32(binary.NativeEndian.Uint32(oob[unix.SizeofCmsghdr-4:]))
		data := oob[unix.CmsgLen(0):l]
		switch {
		case level == unix.IPPROTO_IP && typ == unix.IP_PKTINFO && len(data) >= unix.SizeofInet4Pktinfo:
			// struct in_pktinfo { int ifindex; in_addr spec_dst; in_addr addr; }
			return netip.AddrFrom4([4]byte(data[8:12])), true
		case level == unix.IPPROTO_IPV6 && typ == unix.IPV6_PKTINFO && len(data) >= unix.SizeofInet6Pktinfo:
			// struct in6_pktinfo { in6_addr addr; unsigned ifindex; }
			return netip.AddrFrom16([16]byte(data[:16])).Unmap(), true
		}
		next := unix.CmsgSpace(l - unix.CmsgLen(0))
		if next >= len(oob) {
			break
		}
		oob = oob[next:]
	}
	return netip.Addr{}, false
}

// appendSrc appends the control message that sends a datagram from src:
// IP_PKTINFO's ipi_spec_dst on an AF_INET socket, IPV6_PKTINFO (v4-mapped
// for IPv4) on an AF_INET6 one. The interface is left to routing.
func appendSrc(b []byte, src netip.Addr, v6 bool) []byte {
	level, typ, n := int32(unix.IPPROTO_IP), int32(unix.IP_PKTINFO), unix.SizeofInet4Pktinfo
	if v6 {
		level, typ, n = unix.IPPROTO_IPV6, unix.IPV6_PKTINFO, unix.SizeofInet6Pktinfo
	}
	start := len(b)
	b = append(b, make([]byte, unix.CmsgSpace(n))...)
	h := b[start:]
	if unix.SizeofCmsghdr == 16 {
		binary.NativeEndian.PutUint64(h, uint64(unix.CmsgLen(n)))
	} else {
		binary.NativeEndian.PutUint32(h, uint32(unix.CmsgLen(n)))
	}
	binary.NativeEndian.PutUint32(h[unix.SizeofCmsghdr-8:], uint32(level))
	binary.NativeEndian.PutUint32(h[unix.SizeofCmsghdr-4:], uint32(typ))
	data := h[unix.CmsgLen(0):]
	if v6 {
		a := src.As16() // v4-mapped for an IPv4 source
		copy(data[:16], a[:])
	} else {
		a := src.Unmap().As4()
		copy(data[4:8], a[:]) // ipi_spec_dst
	}
	return b
}
