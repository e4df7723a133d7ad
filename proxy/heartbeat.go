package proxy

// Heartbeat is how a long-lived loop reports to the daemon's watchdog:
// Beat when it makes progress, Idle before it blocks waiting for work (a
// read, an empty queue), Done when it ends. The watchdog pings systemd only
// while no busy loop has gone without a beat for longer than its deadline
// (edge/internal/notify's Heartbeats; *notify.Loop is a Heartbeat).
type Heartbeat interface {
	Beat()
	Idle()
	Done()
}

// Heartbeats registers a loop under a name that says which one it is.
type Heartbeats func(loop string) Heartbeat

// Register returns the loop's Heartbeat, or one that does nothing when f
// is nil (no watchdog).
func (f Heartbeats) Register(loop string) Heartbeat {
	if f == nil {
		return noHeartbeat{}
	}
	return f(loop)
}

type noHeartbeat struct{}

func (noHeartbeat) Beat() {}
func (noHeartbeat) Idle() {}
func (noHeartbeat) Done() {}
