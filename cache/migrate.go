package cache

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// schemaVersion is the on-disk schema this code reads and writes.
//
//	v1: entries as JSON in bucket "clients"; no TTL index, no persisted counts.
//	v2: binary records (codec.go) in "entries", TTL index, counts in "meta",
//	    event outbox, full-resync marker.
//	v3: the outbox stored a batch of events at a time ("event-batches",
//	    "event-state") in place of one key per event ("outbox", "event-ids").
const schemaVersion = 3

// migrations[v] upgrades schema v to v+1. Open runs every pending one in a
// single transaction, so a crash mid-migration leaves the old schema intact.
var migrations = map[int]func(s *Store, tx *bolt.Tx) error{
	1: migrateV1,
	2: migrateV2,
}

// migrate brings the schema up to date and makes sure every bucket exists.
func (s *Store) migrate(tx *bolt.Tx) error {
	meta, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return err
	}
	ver := schemaVersion // a new file starts at the current schema
	if v := meta.Get(metaSchema); len(v) == 4 {
		ver = int(binary.BigEndian.Uint32(v))
	} else if v != nil {
		return fmt.Errorf("cache: unreadable schema version %x", v)
	}
	if ver > schemaVersion {
		return fmt.Errorf("cache: schema v%d is newer than this mxedge understands (v%d)", ver, schemaVersion)
	}
	// The accounting bucket came after v3 without a bump: a v3 file
	// without it gets it here, and an older v3 mxedge ignores it.
	for _, name := range [][]byte{bucketEntries, bucketTTL, bucketBatches, bucketBatchState, bucketAcct} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	for ; ver < schemaVersion; ver++ {
		m := migrations[ver]
		if m == nil {
			return fmt.Errorf("cache: no migration from schema v%d", ver)
		}
		start := time.Now()
		if err := m(s, tx); err != nil {
			return fmt.Errorf("cache: migrate schema v%d to v%d: %w", ver, ver+1, err)
		}
		s.log.Info("cache: migrated schema", "from", ver, "to", ver+1, "took", time.Since(start))
	}
	return meta.Put(metaSchema, binary.BigEndian.AppendUint32(nil, schemaVersion))
}

// v1Bucket and v1Entry are the first prototype's layout, kept only so that
// migrateV1 can read it.
var v1Bucket = []byte("clients")

type v1Entry struct {
	MAC            string        `json:"mac"`
	AuthType       string        `json:"auth_type"`
	UserName       string        `json:"user_name,omitempty"`
	CN             string        `json:"cn,omitempty"`
	SANEmail       string        `json:"san_email,omitempty"`
	SANUPN         string        `json:"san_upn,omitempty"`
	SANDNS         string        `json:"san_dns,omitempty"`
	Serial         string        `json:"serial,omitempty"`
	Issuer         string        `json:"issuer,omitempty"`
	VLAN           string        `json:"vlan,omitempty"`
	Role           string        `json:"role,omitempty"`
	SessionTimeout int64         `json:"session_timeout_s,omitempty"`
	Attributes     []v1Attribute `json:"attributes,omitempty"`
	Site           string        `json:"site,omitempty"`
	LastAuth       time.Time     `json:"last_auth"`
	Expires        time.Time     `json:"expires,omitzero"`
}

type v1Attribute struct {
	Name       string `json:"name"`
	Type       uint8  `json:"type"`
	VendorID   uint32 `json:"vendor_id,omitempty"`
	VendorType uint8  `json:"vendor_type,omitempty"`
	Value      string `json:"value,omitempty"`
	Raw        []byte `json:"raw,omitempty"`
}

// migrateV1 re-encodes v1 JSON records as v2 binary records, builds the
// TTL index and persists the entry count. Unreadable, invalid or expired
// records are dropped: the next sync brings back whatever is still valid.
func migrateV1(s *Store, tx *bolt.Tx) error {
	old := tx.Bucket(v1Bucket)
	if old == nil {
		return nil
	}
	w := wtx{s: s, tx: tx, now: s.opts.Now().UnixNano()}
	w.bind()
	w.entriesN = getInt(w.meta, metaEntries)
	dropped := 0
	err := old.ForEach(func(k, v []byte) error {
		var r v1Entry
		if err := json.Unmarshal(v, &r); err != nil {
			dropped++
			return nil
		}
		e := Entry{
			MAC:      r.MAC,
			AuthType: r.AuthType,
			Identity: Identity{UserName: r.UserName, CN: r.CN, SANEmail: r.SANEmail,
				SANUPN: r.SANUPN, SANDNS: r.SANDNS, Serial: r.Serial, Issuer: r.Issuer},
			Authorization: Authorization{VLAN: r.VLAN, Role: r.Role,
				SessionTimeout: time.Duration(r.SessionTimeout) * time.Second},
			Site:       r.Site,
			LastAuthAt: r.LastAuth,
			ExpiresAt:  r.Expires,
		}
		for _, a := range r.Attributes {
			e.Authorization.Attributes = append(e.Authorization.Attributes, Attribute(a))
		}
		if e.LastAuthAt.IsZero() {
			dropped++ // v1 always wrote it; without it the TTL is unknowable
			return nil
		}
		if err := w.upsert(e); err != nil {
			dropped++
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := tx.DeleteBucket(v1Bucket); err != nil {
		return err
	}
	if dropped > 0 {
		s.log.Warn("cache: dropped unreadable v1 entries", "dropped", dropped)
	}
	return putInt(w.meta, metaEntries, w.entriesN)
}

// The v2 outbox: sequence → event record, and event ID → sequence.
var (
	v2Outbox   = []byte("outbox")
	v2EventIDs = []byte("event-ids")
)

// migrateV2 moves the v2 outbox's events, in order, into batches of
// maxBatchEvents.
func migrateV2(s *Store, tx *bolt.Tx) error {
	old := tx.Bucket(v2Outbox)
	if old != nil {
		w := wtx{s: s, tx: tx}
		moved := int64(0)
		var batch []EncodedEvent
		flush := func() error {
			if len(batch) == 0 {
				return nil
			}
			err := w.appendBatch(batch)
			moved += int64(len(batch))
			batch = batch[:0]
			return err
		}
		err := old.ForEach(func(_, v []byte) error {
			id, err := eventID(v)
			if err != nil {
				s.log.Warn("cache: dropping unreadable outbox event", "err", err)
				return nil
			}
			batch = append(batch, EncodedEvent{id: id, rec: bytes.Clone(v)})
			if len(batch) == maxBatchEvents {
				return flush()
			}
			return nil
		})
		if err == nil {
			err = flush()
		}
		if err != nil {
			return err
		}
		if err := tx.DeleteBucket(v2Outbox); err != nil {
			return err
		}
		// An unreadable event is no longer counted.
		if err := putInt(tx.Bucket(bucketMeta), metaEvents, moved); err != nil {
			return err
		}
	}
	if tx.Bucket(v2EventIDs) != nil {
		return tx.DeleteBucket(v2EventIDs)
	}
	return nil
}
