package edge

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/mxedge/mxedge/edge/config"
	"github.com/mxedge/mxedge/internal/syncbuf"
)

// TestLogsOneValuePerKey: every JSON log line of a start has each key
// once (the listener key was written twice).
func TestLogsOneValuePerKey(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg, err := config.Parse("test.yaml", []byte(testYAML(t, "cloud")+"log:\n  format: json\n  level: debug\n"))
	if err != nil {
		t.Fatal(err)
	}
	var logs syncbuf.Buffer
	a, err := Start(ctx, Options{Config: cfg, Version: "test", Stderr: &logs})
	if err != nil {
		t.Fatal(err)
	}
	a.Shutdown(context.Background())
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	listener := 0
	for _, line := range lines {
		dec := json.NewDecoder(strings.NewReader(line))
		if _, err := dec.Token(); err != nil { // {
			t.Fatalf("not JSON: %s", line)
		}
		seen := map[string]bool{}
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			key := k.(string)
			if seen[key] {
				t.Errorf("key %q twice in %s", key, line)
			}
			seen[key] = true
			if key == "listener" {
				listener++
			}
			var v json.RawMessage
			if err := dec.Decode(&v); err != nil {
				t.Fatal(err)
			}
		}
	}
	if listener == 0 {
		t.Errorf("no line carries listener at all:\n%s", logs.String())
	}
}

// TestTextLogsReadableValues: lists and maps in text logs are JSON, not
// Go's map[…] formatting.
func TestTextLogsReadableValues(t *testing.T) {
	var b bytes.Buffer
	log := newLogger(&b, config.Log{Level: slog.LevelInfo, Format: "text"})
	errs := config.Errors{{File: "c.yaml", Key: "bogus_key", Reason: "unknown key"}}
	log.Info("x", "sources", map[string]string{"clients": "cloud", "federation": "file"}, "servers", []string{"a:2083", "b:2083"}, "n", 3,
		"err", error(errs))
	got := b.String()
	// A list that is an error reads as its message, not as JSON.
	for _, want := range []string{`sources="{\"clients\":\"cloud\",\"federation\":\"file\"}"`, `servers="[\"a:2083\",\"b:2083\"]"`, "n=3",
		`err="c.yaml: bogus_key: unknown key"`} {
		if !strings.Contains(got, want) {
			t.Errorf("log line %q lacks %s", got, want)
		}
	}
}
