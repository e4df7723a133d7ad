package cache

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// clock is an injectable Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

var epoch = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

func newClock() *clock { return &clock{t: epoch} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// mustOpen opens a store in a fresh temp dir (or at path) and closes it at
// the end of the test.
func mustOpen(t testing.TB, path string, opts Options) *Store {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "cache.db")
	}
	s, err := Open(path, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func mab(i int, last time.Time) Entry {
	return Entry{
		MAC:        macN(i),
		AuthType:   AuthMAB,
		Identity:   Identity{UserName: macN(i)},
		LastAuthAt: last,
		Authorization: Authorization{
			VLAN: fmt.Sprint(100 + i%50),
			Role: "printer",
		},
		Site: "site-1",
	}
}

func tls(i int, cn string, last time.Time) Entry {
	return Entry{
		MAC:      macN(i),
		AuthType: AuthEAPTLS,
		Identity: Identity{UserName: cn, CN: cn, SANUPN: cn + "@corp.example", Serial: "01ab", Issuer: "CN=Corp CA"},
		Authorization: Authorization{
			VLAN:           "corp",
			Role:           "employee",
			SessionTimeout: 8 * time.Hour,
			Attributes: []Attribute{
				{Name: "Filter-Id", Type: 11, Value: "corp-acl"},
				{Name: "Aruba-User-Role", Type: 26, VendorID: 14823, VendorType: 1, Value: "employee"},
				{Name: "Class", Type: 25, Raw: []byte{0, 1, 2, 0xff}},
			},
		},
		Site:       "site-1",
		LastAuthAt: last,
	}
}

// macN spreads i over the MAC space so that keys don't arrive in order;
// multiplying by an odd constant modulo 2^48 keeps distinct i distinct.
func macN(i int) string {
	x := uint64(i) * 0x9e3779b97f4a7c15 & (1<<48 - 1)
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", byte(x>>40), byte(x>>32), byte(x>>24), byte(x>>16), byte(x>>8), byte(x))
}

// checkConsistent verifies the invariants the store keeps across commits:
// the persisted count matches the entries, and the TTL index holds exactly
// one key per entry, at its expiry.
func checkConsistent(t testing.TB, s *Store) {
	t.Helper()
	err := s.db.Load().View(func(tx *bolt.Tx) error {
		entries, ttl := tx.Bucket(bucketEntries), tx.Bucket(bucketTTL)
		n := 0
		err := entries.ForEach(func(k, v []byte) error {
			n++
			exp, ok := recordExpiry(v)
			if !ok || ttl.Get(ttlKey(exp, k)) == nil {
				return fmt.Errorf("entry %s has no TTL index key", decodeKey(k))
			}
			return nil
		})
		if err != nil {
			return err
		}
		if got := getInt(tx.Bucket(bucketMeta), metaEntries); got != int64(n) || s.Count() != n {
			return fmt.Errorf("persisted count %d, Count %d, entries %d", got, s.Count(), n)
		}
		if tn := ttl.Stats().KeyN; tn != n {
			return fmt.Errorf("TTL index has %d keys for %d entries", tn, n)
		}
		if err := checkOutbox(tx, s); err != nil {
			return err
		}
		return checkAcct(tx, s)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// checkOutbox checks that every batch has its state and the reverse, and
// that the counts agree with the pending records.
func checkOutbox(tx *bolt.Tx, s *Store) error {
	batches, state := tx.Bucket(bucketBatches), tx.Bucket(bucketBatchState)
	nb := 0
	if err := batches.ForEach(func(k, v []byte) error {
		nb++
		if v != nil || batches.Bucket(k) == nil {
			return fmt.Errorf("outbox batch %x is not a bucket", k)
		}
		if state.Get(k) == nil {
			return fmt.Errorf("outbox batch %x has no state", k)
		}
		return nil
	}); err != nil {
		return err
	}
	if ns := state.Stats().KeyN; ns != nb {
		return fmt.Errorf("%d batch states for %d batches", ns, nb)
	}
	pending := 0
	if err := forEachPending(tx, func(eventLoc, []byte) bool { pending++; return true }); err != nil {
		return err
	}
	if got := getInt(tx.Bucket(bucketMeta), metaEvents); got != int64(pending) || s.OutboxLen() != pending {
		return fmt.Errorf("persisted event count %d, OutboxLen %d, pending %d", got, s.OutboxLen(), pending)
	}
	return nil
}

// checkAcct checks that every held record decodes and that the persisted
// and in-memory count and size agree with the records.
func checkAcct(tx *bolt.Tx, s *Store) error {
	var n, size int64
	if err := tx.Bucket(bucketAcct).ForEach(func(k, v []byte) error {
		if _, err := decodeAcct(k, v); err != nil {
			return fmt.Errorf("held record %x: %w", k, err)
		}
		n++
		size += int64(len(v))
		return nil
	}); err != nil {
		return err
	}
	meta := tx.Bucket(bucketMeta)
	if got, gotB := getInt(meta, metaAcct), getInt(meta, metaAcctBytes); got != n || gotB != size {
		return fmt.Errorf("persisted accounting count %d and size %d, records %d of %d octets", got, gotB, n, size)
	}
	if got, gotB := s.AccountingLen(), s.acctBytes.Load(); int64(got) != n || gotB != size {
		return fmt.Errorf("AccountingLen %d and size %d, records %d of %d octets", got, gotB, n, size)
	}
	return nil
}
