// Package cache is mxedge's durable store for site survivability: the clients
// the cloud NAC recently authenticated (with the authorization it gave them),
// the event outbox filled while the cloud is unreachable, the accounting
// requests held for replay meanwhile, and the sync cursor that lets the
// cloud send only what changed.
//
// It lives in a single bbolt file so that a restart during a WAN outage still
// finds every client, and so that a crash mid-sync leaves the last committed
// state rather than half of a page. Entries expire a configurable time after
// the client's last successful cloud authentication; expiry is checked on
// every read and enforced on disk by a sweeper walking a TTL index, so the
// store never serves a stale authorization even between sweeps.
//
// Layout (schema v3, version in the meta bucket, migrated on Open):
//
//	meta           schema version, entry, event and held-accounting counts, sync cursor
//	entries        MAC (12 hex) → record for MAB; MAC "/" identity → record for EAP-TLS
//	ttl            big-endian expiry ‖ entry key → nothing, for sweeping and eviction
//	full-seen      keys received by a running full resync (absent otherwise)
//	event-batches  big-endian batch sequence → bucket holding "r": the batch's
//	               event records, each a uvarint length then the record
//	event-state    big-endian batch sequence → event count ‖ bitmap of the
//	               events acknowledged or dropped
//	accounting     big-endian sequence → held accounting record: received
//	               time, client name, the request's octets (accounting.go);
//	               added within v3, so an older v3 mxedge leaves it alone
//
// Events are stored a writer's batch at a time, in one value that bbolt
// writes once and never rewrites; acks and evictions only flip bits. The IDs
// of pending events, for acks and idempotent appends, are indexed in memory
// and rebuilt on Open.
//
// The file is locked while open: other processes (the CLI) get a clear
// error after Options.LockTimeout and must ask the daemon instead.
//
// The package knows nothing of RADIUS wire formats: attributes are kept as
// dictionary names with textual or raw values, and it is the consumer's job
// to turn them into packets.
package cache
