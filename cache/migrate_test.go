package cache

import (
	"encoding/binary"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// writeV1 builds a file the way the v1 prototype laid it out.
func writeV1(t *testing.T, path string, recs map[string]any) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
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
	if err != nil {
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
	if st.SchemaVersion != 2 || st.Entries != 2 || st.Cursor != "v1-cursor" {
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
	if err := s.db.View(func(tx *bolt.Tx) error {
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
