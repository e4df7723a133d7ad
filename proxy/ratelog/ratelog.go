// Package ratelog bounds the log lines a flood of requests can cause:
// per key, a few lines per interval reach the logger and the rest are
// counted, and the count is logged once the interval is over. It sits under
// proxy, which proxy, edge and edge/nac may all import, so they share one
// limiter (the root internal/ is for test helpers only).
package ratelog

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Limiter passes at most burst lines per key in each interval to its
// logger and counts the rest. The count reaches the log either on the
// key's first line of a later interval (as "suppressed") or, if none
// comes, from Flush. Keys should come from a fixed set (a message or a
// reason), never from a request's contents: each is kept for good.
type Limiter struct {
	log      *slog.Logger
	interval time.Duration
	burst    int
	now      func() time.Time

	mu   sync.Mutex
	keys map[string]*window
}

type window struct {
	start      time.Time
	n          int // lines passed in this window
	suppressed int // lines counted since the last report
	level      slog.Level
	msg        string
}

// New returns a Limiter; now nil is time.Now.
func New(log *slog.Logger, interval time.Duration, burst int, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{log: log, interval: interval, burst: max(burst, 1), now: now, keys: make(map[string]*window)}
}

// Log logs msg with args at level, unless key already had its burst of
// lines in the current interval; then the line is only counted.
func (l *Limiter) Log(level slog.Level, key, msg string, args ...any) {
	ctx := context.Background()
	if !l.log.Enabled(ctx, level) {
		return
	}
	now := l.now()
	l.mu.Lock()
	w := l.keys[key]
	if w == nil {
		w = &window{start: now}
		l.keys[key] = w
	}
	if now.Sub(w.start) >= l.interval {
		w.start, w.n = now, 0
	}
	if w.n >= l.burst {
		w.suppressed++
		w.level, w.msg = level, msg
		l.mu.Unlock()
		return
	}
	w.n++
	prev := w.suppressed
	w.suppressed = 0
	l.mu.Unlock()
	if prev > 0 {
		args = append(args, "suppressed", prev)
	}
	l.log.Log(ctx, level, msg, args...)
}

// Flush logs one line for each key whose interval is over with lines
// counted and not yet reported: its last message with "suppressed" (the
// count) and "interval". Call it about once an interval.
func (l *Limiter) Flush() { l.flush(false) }

// Close reports every count, interval over or not.
func (l *Limiter) Close() { l.flush(true) }

func (l *Limiter) flush(all bool) {
	type report struct {
		level slog.Level
		msg   string
		n     int
	}
	var out []report
	now := l.now()
	l.mu.Lock()
	for _, w := range l.keys {
		if w.suppressed > 0 && (all || now.Sub(w.start) >= l.interval) {
			out = append(out, report{w.level, w.msg, w.suppressed})
			w.suppressed = 0
		}
	}
	l.mu.Unlock()
	for _, r := range out {
		l.log.Log(context.Background(), r.level, r.msg, "suppressed", r.n, "interval", l.interval)
	}
}

// Run flushes every interval until ctx ends, then reports every count:
// for an owner without a ticker of its own to call Flush from.
func (l *Limiter) Run(ctx context.Context) {
	tk := time.NewTicker(l.interval)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			l.Close()
			return
		case <-tk.C:
			l.Flush()
		}
	}
}
