package main

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"github.com/mxedge/mxedge/cmd/internal/peers"
)

// consoleShots takes screenshots of the edge's web console (Now and
// Decisions) with headless Chromium, into a directory that outlives the
// demo, and returns the path of the last one. Without Chromium it says so
// in err and the demo goes on.
func consoleShots(ctx context.Context, metricsAddr string) (string, error) {
	dir := filepath.Join(os.TempDir(), "mxedge-demo-console")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	var last string
	for _, p := range []struct{ name, path string }{{"now", ""}, {"decisions", "decisions"}} {
		last = filepath.Join(dir, p.name+".png")
		if err := (peers.Chromium{Width: 1280, Height: 900}).Screenshot(ctx, "http://"+metricsAddr+"/console/"+p.path, last); err != nil {
			return "", err
		}
	}
	return last, nil
}
