package console

import (
	"time"

	"github.com/mxedge/mxedge/cache"
)

// Source is what the console needs of the daemon. Each call is one page
// load, so it may read the cache but must not block on the network.
type Source interface {
	// Now is the state for the Now page; the console fills Time, the
	// ages and Decisions.
	Now() Now
	// Entries are the cached entries of one MAC, given as the cache keys
	// it (12 lowercase hex digits): one for MAB, one per certificate
	// identity for EAP-TLS. ErrNoCache when the cache is not open.
	Entries(mac string) ([]Entry, error)
	// Devices lists the RADIUS clients and the cloud RadSec servers; the
	// console adds counts and rates from the metrics registry.
	Devices() Devices
}

// Now is the Now page: where requests go and how the uplink is doing.
type Now struct {
	Time       time.Time   `json:"time"`
	Mode       string      `json:"mode"` // starting, cloud, survival, recovering; local or none when forced
	ModeReason string      `json:"mode_reason,omitempty"`
	Since      time.Time   `json:"since,omitzero"`
	SinceAgeS  float64     `json:"since_age_s,omitempty"`
	Last       *Transition `json:"last_transition,omitempty"`
	Servers    []Server    `json:"servers"`
	Registered bool        `json:"registered"`
	// LastSync is the last cache sync with the cloud.
	LastSync      time.Time `json:"last_sync,omitzero"`
	LastSyncAgeS  float64   `json:"last_sync_age_s,omitempty"`
	LastSyncError string    `json:"last_sync_error,omitempty"`
	Cache         *CacheNow `json:"cache,omitempty"` // nil when no cache is open
	// Decisions is how many decisions the console holds in memory.
	Decisions int `json:"decisions_in_memory"`
}

// Transition is a change of mode and why.
type Transition struct {
	From   string    `json:"from"`
	To     string    `json:"to"`
	Reason string    `json:"reason"`
	Detail string    `json:"detail,omitempty"`
	At     time.Time `json:"at"`
}

// Server is one cloud RadSec server's last health probe.
type Server struct {
	Server  string    `json:"server"`
	OK      bool      `json:"ok"`
	Probed  bool      `json:"probed"` // false before the first probe
	RTTms   float64   `json:"rtt_ms,omitempty"`
	Error   string    `json:"error,omitempty"`
	Checked time.Time `json:"checked,omitzero"`
}

// CacheNow is the client cache and what waits in it for the cloud.
type CacheNow struct {
	Entries int `json:"entries"`
	// Outbox is NAC events waiting for upload; OutboxOldest the time of
	// the oldest of them.
	Outbox          int       `json:"outbox"`
	OutboxOldest    time.Time `json:"outbox_oldest,omitzero"`
	OutboxOldestAge float64   `json:"outbox_oldest_age_s,omitempty"`
	// AccountingHeld is accounting kept for replay to the cloud; Full
	// means new accounting is not answered.
	AccountingHeld      int       `json:"accounting_held"`
	AccountingOldest    time.Time `json:"accounting_oldest,omitzero"`
	AccountingOldestAge float64   `json:"accounting_oldest_age_s,omitempty"`
	AccountingFull      bool      `json:"accounting_full,omitempty"`
}

// Entry is one cached client entry.
type Entry struct {
	MAC      string `json:"mac"`
	AuthType string `json:"auth_type"`
	// Identity is the certificate identity the entry is bound to (EAP-TLS).
	Identity       string            `json:"identity,omitempty"`
	Cert           *cache.Identity   `json:"cert,omitempty"`
	VLAN           string            `json:"vlan,omitempty"`
	Role           string            `json:"role,omitempty"`
	SessionTimeout int64             `json:"session_timeout_s,omitempty"`
	Attributes     []cache.Attribute `json:"attributes,omitempty"`
	Site           string            `json:"site,omitempty"`
	LastAuthAt     time.Time         `json:"last_auth_at,omitzero"`
	ExpiresAt      time.Time         `json:"expires_at"`
}

// ClientPage is the Client page: one MAC's entries and decisions.
type ClientPage struct {
	Time      time.Time  `json:"time"`
	MAC       string     `json:"mac"`
	Entries   []Entry    `json:"entries"`
	Decisions []Decision `json:"decisions"`
	Error     string     `json:"error,omitempty"`
}

// DecisionsPage is the Decisions page.
type DecisionsPage struct {
	Time      time.Time  `json:"time"`
	MAC       string     `json:"mac,omitempty"`
	Identity  string     `json:"identity,omitempty"`
	Limit     int        `json:"limit"`
	Last      uint64     `json:"last_seq"` // poll with after=last_seq for newer ones
	Decisions []Decision `json:"decisions"`
	Error     string     `json:"error,omitempty"`
}

// Devices is the Devices page.
type Devices struct {
	Time time.Time `json:"time"`
	// Window is the span the rates are measured over, in seconds; 0 on
	// the first load, which has nothing to compare with.
	WindowS   float64        `json:"rate_window_s"`
	Clients   []RADIUSClient `json:"radius_clients"`
	Drops     []Count        `json:"radius_drops"` // datagrams the RADIUS listeners dropped, by reason
	Upstreams []Upstream     `json:"radsec_upstreams"`
	// Inbound is the RadSec listener (devices' backup path), when it runs.
	Inbound *Inbound `json:"radsec_inbound,omitempty"`
}

// RADIUSClient is one radius.clients entry and its traffic.
type RADIUSClient struct {
	Name     string  `json:"name"`
	Address  string  `json:"address"`
	Vendor   string  `json:"vendor,omitempty"`
	Site     string  `json:"site,omitempty"`
	Requests float64 `json:"requests"`
	Rate     float64 `json:"rate_per_s"`
	Outcomes []Count `json:"outcomes,omitempty"` // requests by outcome
}

// Upstream is one cloud RadSec server and its connections.
type Upstream struct {
	Server      string  `json:"server"`
	Up          bool    `json:"up"`
	Connections float64 `json:"connections"`
	Requests    float64 `json:"requests"`
	Rate        float64 `json:"rate_per_s"`
	Results     []Count `json:"results,omitempty"` // requests by result (ok, timeout, moved)
	Drops       []Count `json:"dropped_replies,omitempty"`
}

// Inbound is the RadSec listener.
type Inbound struct {
	Connections float64 `json:"connections"`
	Requests    float64 `json:"requests"`
	Rate        float64 `json:"rate_per_s"`
	Drops       []Count `json:"drops,omitempty"`
}

// Count is a counter's value for one label value.
type Count struct {
	Label string  `json:"label"`
	Value float64 `json:"value"`
}
