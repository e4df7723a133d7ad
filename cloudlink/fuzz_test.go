package cloudlink

import (
	"encoding/json"
	"testing"
)

// FuzzDecodePage feeds arbitrary bodies through the page decoder and the
// conversion to a store page: nothing may panic, and with a site filter
// every upsert either stays or becomes a tombstone.
func FuzzDecodePage(f *testing.F) {
	f.Add([]byte(`{"cursor":"e.i.1","final":true,"upserts":[{"mac":"aabbccddeeff","auth_type":"mab","site_id":"hq"}],"tombstones":[{"mac":"001122334455"}]}`))
	f.Add([]byte(`{"cursor":"","full":true,"full_start":true,"upserts":[{"mac":"x","auth_type":"eap-tls","identity":{"cn":"a"},"authorization":{"attributes":[{"raw":"AAE="}]}}]}`))
	f.Add([]byte(`{"upserts":null,"tombstones":[{}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var p CachePage
		if json.Unmarshal(b, &p) != nil {
			return
		}
		sp := toSyncPage(&p, []string{"hq"})
		if len(sp.Upserts)+len(sp.Tombstones) != len(p.Upserts)+len(p.Tombstones) {
			t.Fatalf("%d+%d in, %d+%d out", len(p.Upserts), len(p.Tombstones), len(sp.Upserts), len(sp.Tombstones))
		}
	})
}
