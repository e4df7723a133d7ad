package radsec

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/mxedge/mxedge/proxy/packet"
)

func frame(code byte, id byte, length int, body int) []byte {
	b := make([]byte, 20+body)
	b[0], b[1] = code, id
	b[2], b[3] = byte(length>>8), byte(length)
	return b
}

func TestReadPacket(t *testing.T) {
	two := append(frame(1, 1, 20, 0), frame(2, 2, 22, 2)...)
	tests := []struct {
		name    string
		in      []byte
		lens    []int // lengths of the packets read before err
		wantErr error // nil: any non-nil error that is not io.EOF
		eof     bool
	}{
		{"empty stream", nil, nil, io.EOF, true},
		{"one", frame(1, 1, 20, 0), []int{20}, io.EOF, true},
		{"two back to back", two, []int{20, 22}, io.EOF, true},
		{"max length", frame(1, 1, 4096, 4076), []int{4096}, io.EOF, true},
		{"partial header", []byte{1, 2, 0}, nil, io.ErrUnexpectedEOF, false},
		{"truncated body", frame(1, 1, 30, 5), nil, io.ErrUnexpectedEOF, false},
		{"length 19", frame(1, 1, 19, 0), nil, packet.ErrLength, false},
		{"length 0", frame(1, 1, 0, 0), nil, packet.ErrLength, false},
		{"length 4097", frame(1, 1, 4097, 4077), nil, packet.ErrLength, false},
		{"garbage after packet", append(frame(1, 1, 20, 0), 0xff, 0xff, 0xff, 0xff), []int{20}, packet.ErrLength, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := bufio.NewReader(bytes.NewReader(tt.in))
			var lens []int
			var err error
			for {
				var b []byte
				b, err = ReadPacket(r, make([]byte, 0, 64))
				if err != nil {
					break
				}
				lens = append(lens, len(b))
			}
			if !equalInts(lens, tt.lens) {
				t.Errorf("read %v, want %v", lens, tt.lens)
			}
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestReadPacketBuffer(t *testing.T) {
	in := frame(1, 1, 30, 10)
	buf := make([]byte, 0, 64)
	b, err := ReadPacket(bufio.NewReader(bytes.NewReader(in)), buf)
	if err != nil || &b[0] != &buf[:1][0] {
		t.Fatalf("did not reuse the buffer: %v", err)
	}
	b, err = ReadPacket(bufio.NewReader(bytes.NewReader(in)), nil)
	if err != nil || len(b) != 30 || cap(b) != 30 {
		t.Fatalf("len %d cap %d err %v", len(b), cap(b), err)
	}
}

// FuzzReadPacket checks that framing never panics, never returns a packet
// outside 20..4096 octets or disagreeing with its Length, and consumes
// exactly the packets it returns.
func FuzzReadPacket(f *testing.F) {
	f.Add(frame(1, 1, 20, 0))
	f.Add(frame(1, 1, 19, 0))
	f.Add(frame(1, 1, 4097, 10))
	f.Add([]byte{1, 2, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bufio.NewReader(bytes.NewReader(in))
		total := 0
		for {
			b, err := ReadPacket(r, nil)
			if err != nil {
				if err == io.EOF && total != len(in) {
					t.Fatalf("clean EOF after %d of %d octets", total, len(in))
				}
				return
			}
			_, _, n, herr := packet.Header(b)
			if herr != nil || n != len(b) {
				t.Fatalf("returned %d octets with Length %d (%v)", len(b), n, herr)
			}
			if !bytes.Equal(b, in[total:total+n]) {
				t.Fatal("returned octets differ from the stream")
			}
			total += n
		}
	})
}
