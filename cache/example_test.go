package cache_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/mxedge/mxedge/cache"
)

func Example() {
	dir, _ := os.MkdirTemp("", "mxedge-example")
	defer os.RemoveAll(dir)

	s, err := cache.Open(filepath.Join(dir, "cache.db"), cache.Options{TTL: 7 * 24 * time.Hour})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	// cloudlink applies what the cloud sends, page by page.
	cert := cache.Identity{CN: "host/laptop42.corp.example", Issuer: "CN=Corp Issuing CA"}
	err = s.ApplySync(cache.SyncPage{
		Cursor: "2026-11-26T21:00:00Z#1",
		Upserts: []cache.Entry{
			{MAC: "AA-BB-CC-00-00-42", AuthType: cache.AuthEAPTLS, Identity: cert, LastAuthAt: time.Now(),
				Authorization: cache.Authorization{VLAN: "corp", Attributes: []cache.Attribute{
					{Name: "Filter-Id", Type: 11, Value: "corp-acl"}}}},
			{MAC: "aabb.cc00.0043", AuthType: cache.AuthMAB, LastAuthAt: time.Now(),
				Authorization: cache.Authorization{VLAN: "30", Role: "printer"}},
		},
		Final: true,
	})
	if err != nil {
		log.Fatal(err)
	}

	// edge/nac looks clients up while the cloud is unreachable.
	e, ok, _ := s.Lookup("aa:bb:cc:00:00:42", cert.Key())
	fmt.Println(ok, e.Authorization.VLAN, e.Authorization.Attributes[0].Value)
	e, ok, _ = s.Lookup("aabbcc000043", "")
	fmt.Println(ok, e.Authorization.VLAN, e.Authorization.Role)
	_, ok, _ = s.Lookup("aabbcc000044", "")
	fmt.Println(ok)

	// ...and records what it decided, for upload once the cloud is back.
	_ = s.AppendEvent(cache.Event{Type: "NAC Client Access Allowed", MAC: "aabbcc000043", Reason: "cached"})
	evs, _ := s.PendingEvents(100)
	_ = s.AckEvents(evs[0].ID)
	fmt.Println(len(evs), s.OutboxLen(), s.Count(), s.Cursor())
	// Output:
	// true corp corp-acl
	// true 30 printer
	// false
	// 1 0 2 2026-11-26T21:00:00Z#1
}
