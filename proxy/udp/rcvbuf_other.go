//go:build !linux

package udp

import "net"

// setReceiveBuffer asks for n bytes; the granted size is not read back.
func setReceiveBuffer(c *net.UDPConn, n int) (int, error) {
	return 0, c.SetReadBuffer(n)
}
