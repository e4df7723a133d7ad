package radsec

import (
	"bufio"
	"fmt"
	"io"

	"github.com/mxedge/mxedge/proxy/packet"
)

// secret is the RADIUS shared secret used inside RadSec (bis §3.1).
var secret = []byte("radsec")

// ReadPacket reads one RADIUS packet from a RadSec stream. It uses buf when
// it is large enough and allocates otherwise, so a nil buf yields a slice
// the caller owns. io.EOF means the peer closed cleanly between packets;
// any other error (a Length outside 20..4096, a truncated packet) means the
// stream can no longer be trusted and the connection must be closed.
// Attributes are not checked here: packet.Parse does that.
func ReadPacket(r *bufio.Reader, buf []byte) ([]byte, error) {
	hdr, err := r.Peek(4)
	if err != nil {
		if err == io.EOF && len(hdr) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	_, _, n, err := packet.Header(hdr)
	if err != nil {
		return nil, fmt.Errorf("radsec: bad frame: %w", err)
	}
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return buf, nil
}
