package peers

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
)

// Chromium drives headless Chromium (Debian's chromium package) against
// the edge's web console: a screenshot of a page, or its DOM after
// scripts ran. Each run gets a fresh profile and none of the browser's
// background traffic, so it only talks to the URL it is given.
type Chromium struct {
	Bin           string // default: chromium on PATH
	Width, Height int    // window size; default 1280×900
}

func (c Chromium) args(profile string, more ...string) []string {
	w, h := c.Width, c.Height
	if w == 0 {
		w, h = 1280, 900
	}
	return append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--hide-scrollbars", "--user-data-dir=" + profile,
		"--window-size=" + strconv.Itoa(w) + "," + strconv.Itoa(h)}, more...)
}

func (c Chromium) run(ctx context.Context, more ...string) ([]byte, error) {
	bin := c.Bin
	if bin == "" {
		var err error
		if bin, err = LookBin("chromium"); err != nil {
			return nil, err
		}
	}
	profile, err := os.MkdirTemp("", "mxedge-chromium-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(profile)
	cmd := exec.CommandContext(ctx, bin, c.args(profile, more...)...)
	cmd.Dir = profile
	cmd.WaitDelay = 5e9
	var stderr limitedBuffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("chromium: %w: %s", err, stderr.String())
	}
	return out, nil
}

// Screenshot saves url as a PNG at path.
func (c Chromium) Screenshot(ctx context.Context, url, path string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	if _, err := c.run(ctx, "--screenshot="+abs, url); err != nil {
		return err
	}
	if fi, err := os.Stat(abs); err != nil || fi.Size() == 0 {
		return fmt.Errorf("chromium: no screenshot at %s (%v)", abs, err)
	}
	return nil
}

// DumpDOM returns url's DOM as serialized HTML once the page loaded;
// budgetMS, when positive, lets its scripts run that long first (virtual
// time).
func (c Chromium) DumpDOM(ctx context.Context, url string, budgetMS int) (string, error) {
	more := []string{"--dump-dom"}
	if budgetMS > 0 {
		more = append(more, "--virtual-time-budget="+strconv.Itoa(budgetMS))
	}
	out, err := c.run(ctx, append(more, url)...)
	return string(out), err
}

// limitedBuffer keeps the first 8 KiB written: Chromium is chatty on stderr.
type limitedBuffer struct{ b []byte }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := 8<<10 - len(l.b); room > 0 {
		l.b = append(l.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string { return string(l.b) }
