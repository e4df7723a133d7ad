package main

import "testing"

// TestReadyAddrs reads the bound addresses from ready lines as the text
// log handler writes them (lists as quoted JSON).
func TestReadyAddrs(t *testing.T) {
	tests := []struct {
		name, line          string
		auth, acct, metrics string
		wantErr             bool
	}{
		{
			name: "loopback",
			line: `time=2026-12-06T17:00:00Z level=INFO msg="mxedge ready" version=test auth="[\"127.0.0.1:40001\"]" acct="[\"127.0.0.1:40002\"]" clients=1 cloud="[\"x:2083\"]" metrics=127.0.0.1:40003`,
			auth: "127.0.0.1:40001", acct: "127.0.0.1:40002", metrics: "127.0.0.1:40003",
		},
		{
			name: "wildcard is reached on loopback",
			line: `msg="mxedge ready" auth="[\"0.0.0.0:40001\",\"[::1]:40005\"]" acct="[\"0.0.0.0:40002\"]" metrics=127.0.0.1:40003`,
			auth: "127.0.0.1:40001", acct: "127.0.0.1:40002", metrics: "127.0.0.1:40003",
		},
		{name: "configured port 0", line: `msg="mxedge ready" auth="[\"127.0.0.1:0\"]" acct="[\"127.0.0.1:1\"]" metrics=127.0.0.1:2`, wantErr: true},
		{name: "no acct", line: `msg="mxedge ready" auth="[\"127.0.0.1:1\"]" acct="[]" metrics=127.0.0.1:2`, wantErr: true},
		{name: "no metrics", line: `msg="mxedge ready" auth="[\"127.0.0.1:1\"]" acct="[\"127.0.0.1:1\"]" metrics=""`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			auth, acct, metrics, err := readyAddrs(tt.line)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if auth != tt.auth || acct != tt.acct || metrics != tt.metrics {
				t.Fatalf("got %s %s %s, want %s %s %s", auth, acct, metrics, tt.auth, tt.acct, tt.metrics)
			}
		})
	}
}
