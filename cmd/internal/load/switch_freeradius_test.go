package load

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/mxedge/mxedge/cmd/internal/peers"
	"github.com/mxedge/mxedge/proxy/packet"
)

// TestSwitchAgainstFreeRADIUS checks the switch's packets against a real
// server: MAB accepted with its VLAN, accounting answered and written to
// the detail file once each, in order, as ParseDetail reads them back.
func TestSwitchAgainstFreeRADIUS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts FreeRADIUS")
	}
	f := peers.MustFreeRADIUS(t, peers.FreeRADIUSOptions{UDP: true, MAB: map[string]string{"aabbcc000001": "100"}})
	sw, err := NewSwitch(SwitchConfig{Auth: f.AuthAddr(), Acct: f.AcctAddr(), Secret: []byte(f.Secret), Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer sw.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	if r := sw.MAB(ctx, "aabbcc000001"); r.Try != 1 || r.Code != packet.CodeAccessAccept || r.Reply.VLAN != "100" {
		t.Fatalf("MAB: try %d %v %+v %v", r.Try, r.Code, r.Reply, r.Err)
	}
	if r := sw.MAB(ctx, "aabbcc0000ff"); r.Try != 1 || r.Code != packet.CodeAccessReject {
		t.Fatalf("unknown MAC: try %d %v %v", r.Try, r.Code, r.Err)
	}
	for i, st := range []AcctStatus{AcctStart, AcctInterim, AcctStop} {
		r := sw.Account(ctx, Acct{Status: st, SessionID: "sess-1", MAC: "aabbcc000001", SessionTime: uint32(i), Class: []byte("c1")})
		if r.Try != 1 {
			t.Fatalf("accounting %d: try %d %v", st, r.Try, r.Err)
		}
	}
	recs, err := f.AccountingRecords()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 {
		t.Fatalf("%d detail records, want 3: %+v", len(recs), recs)
	}
	for i, want := range []string{"Start", "Interim-Update", "Stop"} {
		r := recs[i]
		if r.Get("Acct-Status-Type") != want || r.Get("Acct-Session-Id") != "sess-1" || r.Get("Acct-Session-Time") != strconv.Itoa(i) ||
			r.Get("Acct-Delay-Time") != "0" || r.Get("User-Name") != "aabbcc000001" || r.Get("Class") != "0x6331" {
			t.Errorf("record %d: %v", i, r.Attrs)
		}
	}
}
