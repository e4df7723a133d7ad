//go:build linux

package udp

import (
	"net"

	"golang.org/x/sys/unix"
)

// setReceiveBuffer asks for a socket receive buffer of n bytes and returns
// what the kernel granted. SO_RCVBUF is capped by net.core.rmem_max;
// SO_RCVBUFFORCE ignores the cap but needs CAP_NET_ADMIN, so it is tried
// first and the plain option is the fallback. The kernel doubles the
// value for its bookkeeping and reports the doubled figure; half of it is
// returned, comparable with n.
func setReceiveBuffer(c *net.UDPConn, n int) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var got int
	var serr error
	err = rc.Control(func(fd uintptr) {
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n) != nil {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, n)
		}
		got, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
	})
	if err == nil {
		err = serr
	}
	return got / 2, err
}
