package ratelog

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// records keeps every record logged.
type records struct {
	mu  sync.Mutex
	all []slog.Record
}

func (r *records) Enabled(context.Context, slog.Level) bool { return true }
func (r *records) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.all = append(r.all, rec)
	return nil
}
func (r *records) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *records) WithGroup(string) slog.Handler      { return r }

func suppressed(rec slog.Record) int64 {
	var n int64
	rec.Attrs(func(a slog.Attr) bool {
		if a.Key == "suppressed" {
			n = a.Value.Int64()
		}
		return true
	})
	return n
}

func TestLimiter(t *testing.T) {
	now := time.Unix(1e9, 0)
	h := &records{}
	l := New(slog.New(h), 10*time.Second, 3, func() time.Time { return now })
	for range 1000 {
		l.Log(slog.LevelWarn, "a", "dropped", "reason", "x")
	}
	l.Log(slog.LevelWarn, "b", "other")
	if len(h.all) != 4 {
		t.Fatalf("%d lines for 1001 calls, want 3 of a and 1 of b", len(h.all))
	}
	l.Flush() // interval not over: nothing yet
	if len(h.all) != 4 {
		t.Fatalf("flushed early: %d lines", len(h.all))
	}
	now = now.Add(10 * time.Second)
	l.Log(slog.LevelWarn, "a", "dropped", "reason", "x")
	if len(h.all) != 5 || suppressed(h.all[4]) != 997 {
		t.Fatalf("next interval's first line: %d lines, suppressed %d; want 997", len(h.all), suppressed(h.all[4]))
	}
	for range 10 {
		l.Log(slog.LevelWarn, "a", "dropped")
	}
	now = now.Add(10 * time.Second)
	l.Flush()
	if len(h.all) != 8 || suppressed(h.all[7]) != 8 || h.all[7].Message != "dropped" {
		t.Fatalf("flush: %d lines, last %q suppressed %d; want 8 suppressed", len(h.all), h.all[len(h.all)-1].Message, suppressed(h.all[len(h.all)-1]))
	}
	l.Flush()
	l.Close()
	if len(h.all) != 8 {
		t.Fatal("a count reported twice")
	}
}

func TestLimiterDisabledLevel(t *testing.T) {
	l := New(slog.New(slog.DiscardHandler), time.Second, 1, nil)
	l.Log(slog.LevelInfo, "k", "m")
	l.Close()
}
