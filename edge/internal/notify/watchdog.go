package notify

import (
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// WatchdogInterval returns WatchdogSec as systemd passed it to this process,
// and false when the watchdog is off, or meant for another PID, or malformed.
// The caller pings well inside it (edge pings every third of it, after a
// self-check that may itself take a quarter).
func WatchdogInterval() (time.Duration, bool) {
	d, err := daemon.SdWatchdogEnabled(false)
	if err != nil || d <= 0 {
		return 0, false
	}
	return d, true
}

// Pinger sends WATCHDOG=1 on a tick only if every loop it watches called
// [Pinger.Progress] since the previous ping. A loop that blocks on I/O should
// wake up on a deadline shorter than half the watchdog interval and report
// progress then: waking and getting back to its work is the progress.
//
// A Pinger with no loops never pings, so forgetting to name one shows up at
// once as a watchdog restart, not as a watchdog that proves nothing.
type Pinger struct {
	log *slog.Logger

	mu       sync.Mutex
	progress map[string]bool // loop name → progressed since the last ping
}

// NewPinger returns a Pinger watching loops. log may be nil.
func NewPinger(log *slog.Logger, loops ...string) *Pinger {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Pinger{log: log, progress: make(map[string]bool, len(loops))}
	for _, name := range loops {
		p.progress[name] = false
	}
	return p
}

// Progress records that loop name did a round of work. Names not given to
// NewPinger are ignored: a loop cannot vouch for itself by just calling this.
func (p *Pinger) Progress(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.progress[name]; ok {
		p.progress[name] = true
	}
}

// Ping sends WATCHDOG=1 if every watched loop progressed since the last
// ping, and starts a new round. It reports whether it pinged; when it did not,
// it logs the stalled loops, which is the clue left behind before systemd
// kills the daemon.
func (p *Pinger) Ping() (bool, error) {
	p.mu.Lock()
	var stalled []string
	for name, ok := range p.progress {
		if !ok {
			stalled = append(stalled, name)
		}
	}
	all := len(p.progress) > 0 && len(stalled) == 0
	if all {
		for name := range p.progress {
			p.progress[name] = false
		}
	}
	p.mu.Unlock()

	if !all {
		slices.Sort(stalled)
		p.log.Warn("watchdog: not pinging, loops made no progress", "stalled", stalled)
		return false, nil
	}
	if err := send(daemon.SdNotifyWatchdog); err != nil {
		return false, err
	}
	return true, nil
}
