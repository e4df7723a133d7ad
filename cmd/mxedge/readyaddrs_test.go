package main

import "testing"

// TestReadyAddrs reads the bound addresses from ready lines as the text
// log handler writes them (non-empty lists as quoted JSON, an empty one
// bare).
func TestReadyAddrs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, line string
		want       bound
		wantErr    bool
	}{
		{
			name: "loopback, radsec off",
			line: `time=2026-12-06T17:00:00Z level=INFO msg="mxedge ready" version=test auth="[\"127.0.0.1:40001\"]" acct="[\"127.0.0.1:40002\"]" radsec=[] clients=1 cloud="[\"x:2083\"]" metrics=127.0.0.1:40003`,
			want: bound{Auth: "127.0.0.1:40001", Acct: "127.0.0.1:40002", Metrics: "127.0.0.1:40003"},
		},
		{
			name: "radsec on",
			line: `msg="mxedge ready" version=test auth="[\"127.0.0.1:40001\"]" acct="[\"127.0.0.1:40002\"]" radsec="[\"127.0.0.1:40123\"]" clients=1 cloud=null metrics=127.0.0.1:40003`,
			want: bound{Auth: "127.0.0.1:40001", Acct: "127.0.0.1:40002", Metrics: "127.0.0.1:40003", RadSec: "127.0.0.1:40123"},
		},
		{
			name: "wildcard is reached on loopback",
			line: `msg="mxedge ready" auth="[\"0.0.0.0:40001\",\"[::1]:40005\"]" acct="[\"0.0.0.0:40002\"]" radsec="[\"0.0.0.0:40123\",\"[::]:40124\"]" metrics=127.0.0.1:40003`,
			want: bound{Auth: "127.0.0.1:40001", Acct: "127.0.0.1:40002", Metrics: "127.0.0.1:40003", RadSec: "127.0.0.1:40123"},
		},
		{name: "configured port 0", line: `msg="mxedge ready" auth="[\"127.0.0.1:0\"]" acct="[\"127.0.0.1:1\"]" radsec=[] metrics=127.0.0.1:2`, wantErr: true},
		{name: "radsec port 0", line: `msg="mxedge ready" auth="[\"127.0.0.1:1\"]" acct="[\"127.0.0.1:1\"]" radsec="[\"127.0.0.1:0\"]" metrics=127.0.0.1:2`, wantErr: true},
		{name: "no acct", line: `msg="mxedge ready" auth="[\"127.0.0.1:1\"]" acct=[] radsec=[] metrics=127.0.0.1:2`, wantErr: true},
		{name: "no radsec key", line: `msg="mxedge ready" auth="[\"127.0.0.1:1\"]" acct="[\"127.0.0.1:1\"]" metrics=127.0.0.1:2`, wantErr: true},
		{name: "radsec null", line: `msg="mxedge ready" auth="[\"127.0.0.1:1\"]" acct="[\"127.0.0.1:1\"]" radsec=null metrics=127.0.0.1:2`, wantErr: true},
		{name: "no metrics", line: `msg="mxedge ready" auth="[\"127.0.0.1:1\"]" acct="[\"127.0.0.1:1\"]" radsec=[] metrics=""`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readyAddrs(tt.line)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if !tt.wantErr && got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}
