package flight

import (
	"bytes"
	"errors"
	"net"
	"testing"
)

// TestFlights: what is written between two reads comes out of Step as one
// flight; Close fails the blocked reader with net.ErrClosed.
func TestFlights(t *testing.T) {
	p := New()
	done := make(chan error, 1)
	go func() {
		var b [5]byte
		for _, reply := range []string{"ab", "cd"} {
			n, err := p.Read(b[:])
			if err != nil {
				done <- err
				return
			}
			p.Write([]byte(reply))
			p.Write(b[:n]) // a second write: still the same flight
		}
		_, err := p.Read(b[:])
		done <- err
	}()
	never := func() bool { return false }
	if out := p.Step([]byte("1"), never); !bytes.Equal(out, []byte("ab1")) {
		t.Fatalf("first flight %q", out)
	}
	if out := p.Step([]byte("2"), never); !bytes.Equal(out, []byte("cd2")) {
		t.Fatalf("second flight %q", out)
	}
	p.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read after Close: %v", err)
	}
	if _, err := p.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after Close: %v", err)
	}
}
