package cache

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// writeV1 builds a file the way the v1 prototype laid it out.
func writeV1(t *testing.T, path string, recs map[string]any) {
	t.Helper()
	writeRaw(t, path, func(tx *bolt.Tx) error {
		meta, _ := tx.CreateBucket(bucketMeta)
		if err := meta.Put(metaSchema, binary.BigEndian.AppendUint32(nil, 1)); err != nil {
			return err
		}
		if err := meta.Put(metaCursor, []byte("v1-cursor")); err != nil {
			return err
		}
		clients, _ := tx.CreateBucket(v1Bucket)
		for k, r := range recs {
			v, ok := r.([]byte)
			if !ok {
				v, _ = json.Marshal(r)
			}
			if err := clients.Put([]byte(k), v); err != nil {
				return err
			}
		}
		return nil
	})
}

// writeRaw writes a file with bbolt alone, in one transaction, the way an
// older mxedge left it.
func writeRaw(t *testing.T, path string, fn func(*bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
}

func TestMigrateV1ToV2(t *testing.T) {
	clk := newClock()
	path := filepath.Join(t.TempDir(), "cache.db")
	writeV1(t, path, map[string]any{
		"aabbccddeeff": v1Entry{MAC: "aabbccddeeff", AuthType: "mab", VLAN: "30", LastAuth: epoch.Add(-time.Hour)},
		"aabbccddeeff/alice": v1Entry{MAC: "aabbccddeeff", AuthType: "eap-tls", CN: "alice", VLAN: "corp", Role: "staff",
			SessionTimeout: 3600, LastAuth: epoch.Add(-2 * time.Hour), Expires: epoch.Add(time.Hour),
			Attributes: []v1Attribute{{Name: "Filter-Id", Type: 11, Value: "acl"}}},
		"001122334455": v1Entry{MAC: "001122334455", AuthType: "mab", LastAuth: epoch.Add(-10 * 24 * time.Hour)}, // expired
		"0011223344ff": []byte("{not json"),
	})
	s := mustOpen(t, path, Options{Now: clk.Now})
	st := s.Stats()
	if st.SchemaVersion != schemaVersion || st.Entries != 2 || st.Cursor != "v1-cursor" {
		t.Fatalf("after migration: %+v", st)
	}
	e, ok, err := s.Lookup("aa:bb:cc:dd:ee:ff", "")
	if err != nil || !ok || e.Authorization.VLAN != "30" || !e.ExpiresAt.Equal(epoch.Add(-time.Hour+DefaultTTL)) {
		t.Fatalf("MAB after migration: %+v %v %v", e, ok, err)
	}
	e, ok, err = s.Lookup("aabbccddeeff", "alice")
	if err != nil || !ok || e.Authorization.SessionTimeout != time.Hour || e.Authorization.Attributes[0].Value != "acl" ||
		!e.ExpiresAt.Equal(epoch.Add(time.Hour)) {
		t.Fatalf("EAP-TLS after migration: %+v %v %v", e, ok, err)
	}
	checkConsistent(t, s)
	// The TTL index was built: sweeping after expiry removes both.
	clk.Advance(DefaultTTL)
	if n, err := s.Sweep(0); err != nil || n != 2 || s.Count() != 0 {
		t.Fatalf("sweep after migration: %d, %v, count %d", n, err, s.Count())
	}
	if err := s.db.Load().View(func(tx *bolt.Tx) error {
		if tx.Bucket(v1Bucket) != nil {
			t.Error("v1 bucket left behind")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func TestMigrateFailureLeavesFileUntouched(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.db")
	writeV1(t, path, map[string]any{"aabbccddeeff": v1Entry{MAC: "aabbccddeeff", AuthType: "mab", LastAuth: epoch}})
	saved := migrations[1]
	migrations[1] = func(s *Store, tx *bolt.Tx) error {
		if err := saved(s, tx); err != nil {
			return err
		}
		return errTest
	}
	_, err := Open(path, Options{Now: newClock().Now})
	migrations[1] = saved
	if err == nil || !strings.Contains(err.Error(), "migrate schema v1 to v2") {
		t.Fatalf("Open err = %v", err)
	}
	// Still v1: the failed migration rolled back as one transaction.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_ = db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(metaSchema); binary.BigEndian.Uint32(v) != 1 || tx.Bucket(v1Bucket) == nil {
			t.Errorf("schema %x, v1 bucket %v after failed migration", v, tx.Bucket(v1Bucket) != nil)
		}
		return nil
	})
}

func TestNewerSchemaRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	_ = db.Update(func(tx *bolt.Tx) error {
		meta, _ := tx.CreateBucket(bucketMeta)
		return meta.Put(metaSchema, binary.BigEndian.AppendUint32(nil, schemaVersion+1))
	})
	db.Close()
	if _, err := Open(path, Options{}); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("Open err = %v", err)
	}
}

type testError string

func (e testError) Error() string { return string(e) }

const errTest = testError("injected failure")

// writeV2Outbox builds a v2 file holding only an outbox: one key per
// event, and the ID index.
func writeV2Outbox(t *testing.T, path string, recs [][]byte) {
	t.Helper()
	writeRaw(t, path, func(tx *bolt.Tx) error {
		meta, _ := tx.CreateBucket(bucketMeta)
		out, _ := tx.CreateBucket(v2Outbox)
		ids, _ := tx.CreateBucket(v2EventIDs)
		for _, name := range [][]byte{bucketEntries, bucketTTL} {
			if _, err := tx.CreateBucket(name); err != nil {
				return err
			}
		}
		for _, r := range recs {
			seq, _ := out.NextSequence()
			k := binary.BigEndian.AppendUint64(nil, seq)
			if err := out.Put(k, r); err != nil {
				return err
			}
			if id, err := eventID(r); err == nil {
				if err := ids.Put([]byte(id), k); err != nil {
					return err
				}
			}
		}
		return errors.Join(
			meta.Put(metaSchema, binary.BigEndian.AppendUint32(nil, 2)),
			putInt(meta, metaEvents, int64(len(recs))),
			putInt(meta, metaDropped, 3))
	})
}

// The v2 outbox's events move, in order and in batches, into the v3
// layout; an unreadable one is dropped; the old buckets go.
func TestMigrateV2ToV3(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.db")
	var recs [][]byte
	var want []string
	for i := range maxBatchEvents + 5 {
		ev := Event{ID: fmt.Sprintf("%032x", i), Type: "NAC Client Access Allowed", Time: epoch, MAC: macN(i)}
		if i == 3 {
			recs = append(recs, []byte(`{"id":"plain","type":"t","time":"2026-01-01T00:00:00Z"}`))
			want = append(want, "plain")
			continue
		}
		if i == 4 {
			recs = append(recs, []byte{eventRecordV2, 0xff}) // unreadable
			continue
		}
		r, err := encodeEvent(&ev)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
		want = append(want, ev.ID)
	}
	writeV2Outbox(t, path, recs)
	s := mustOpen(t, path, Options{})
	if st := s.Stats(); st.SchemaVersion != 3 || st.Events != len(want) || st.EventsDropped != 3 {
		t.Fatalf("after migration: %+v; want %d events", st, len(want))
	}
	evs, err := s.PendingEvents(0)
	if err != nil || !slices.Equal(idsOf(evs), want) {
		t.Fatalf("PendingEvents = %d events, %v", len(evs), err)
	}
	if evs[5].MAC != macN(6) || !evs[5].Time.Equal(epoch) {
		t.Fatalf("event 5 = %+v", evs[5])
	}
	checkConsistent(t, s)
	if err := s.AckEvents("plain", want[len(want)-1]); err != nil || s.OutboxLen() != len(want)-2 {
		t.Fatalf("ack: %v, len %d", err, s.OutboxLen())
	}
	if err := s.db.Load().View(func(tx *bolt.Tx) error {
		if tx.Bucket(v2Outbox) != nil || tx.Bucket(v2EventIDs) != nil {
			t.Error("v2 outbox buckets left behind")
		}
		if n := tx.Bucket(bucketBatchState).Stats().KeyN; n != 2 {
			t.Errorf("%d batches, want 2", n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	checkConsistent(t, s)
}
