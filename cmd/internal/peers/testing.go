package peers

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"
)

// startTimeout bounds how long the Must helpers wait for a peer to be ready.
const startTimeout = 20 * time.Second

// RequireBin returns the path of a peer binary. When it is missing the test
// is skipped, except in CI (CI=true), where the peers are installed on
// purpose and a missing one is a failure.
func RequireBin(tb testing.TB, name string) string {
	tb.Helper()
	p, err := LookBin(name)
	if err != nil {
		skipOrFail(tb, err)
	}
	return p
}

func skipOrFail(tb testing.TB, err error) {
	tb.Helper()
	if os.Getenv("CI") == "true" {
		tb.Fatal(err)
	}
	tb.Skip(err)
}

// FreeLoopbackPort returns a free 127.0.0.1 port for "tcp" or "udp".
func FreeLoopbackPort(tb testing.TB, network string) int {
	tb.Helper()
	p, err := FreePort(network)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// MustFreeRADIUS starts FreeRADIUS in a test temp dir and stops it at
// cleanup. Its log is printed when the test failed.
func MustFreeRADIUS(tb testing.TB, opts FreeRADIUSOptions) *FreeRADIUS {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	f, err := StartFreeRADIUS(ctx, tb.TempDir(), opts)
	if errors.Is(err, ErrNotInstalled) {
		skipOrFail(tb, err)
	}
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		f.Stop()
		if tb.Failed() {
			tb.Logf("FreeRADIUS log tail:\n%s", tail(f.Logs, 60))
		}
	})
	return f
}

// MustRadsecproxy starts radsecproxy in a test temp dir and stops it at
// cleanup. Its log is printed when the test failed.
func MustRadsecproxy(tb testing.TB, opts RadsecproxyOptions) *Radsecproxy {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	r, err := StartRadsecproxy(ctx, tb.TempDir(), opts)
	if errors.Is(err, ErrNotInstalled) {
		skipOrFail(tb, err)
	}
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		r.Stop()
		if tb.Failed() {
			tb.Logf("radsecproxy log tail:\n%s", tail(r.Logs, 60))
		}
	})
	return r
}
