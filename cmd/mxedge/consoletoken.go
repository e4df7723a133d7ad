package main

import (
	"fmt"
	"io"
	"net"
	"net/url"
	"os"

	"github.com/mxedge/mxedge/edge/config"
	"github.com/mxedge/mxedge/edge/console"
)

// consoleInfo is what `mxedge console-token` prints.
type consoleInfo struct {
	URL           string `json:"url"`
	TokenRequired bool   `json:"token_required"`
	TokenFile     string `json:"token_file"`
	Token         string `json:"token"`
	// Open is the URL with the token: opened once in a browser it sets the
	// console's cookie.
	Open string `json:"open"`
}

// consoleTokenCmd implements `mxedge console-token [--config F] [--json]`:
// it prints the console's address and the token it asks for off
// loopback, creating the token file when there is none yet (the daemon
// reads it again when it changes).
func consoleTokenCmd(args []string, stdout, stderr io.Writer) int {
	f, code, done := parseCLI("console-token", args, stdout, stderr)
	if done {
		return code
	}
	if len(f.args) > 0 {
		fmt.Fprintf(stderr, "mxedge console-token: unexpected argument %q\n", f.args[0])
		return 2
	}
	cfg, ok := loadCLIConfig(f, stderr)
	if !ok {
		return 1
	}
	m := cfg.Metrics
	if m.Listen == "" || !m.Console {
		fmt.Fprintln(stderr, "mxedge console-token: the console is off (metrics.listen empty or metrics.console false)")
		return 1
	}
	path := cfg.ConsoleTokenFile()
	tok, created, err := console.EnsureToken(path)
	if err != nil {
		fmt.Fprintln(stderr, "mxedge console-token:", err)
		return 1
	}
	info := consoleInfo{URL: consoleAddress(cfg), TokenRequired: !config.IsLoopbackListen(m.Listen), TokenFile: path, Token: tok}
	info.Open = info.URL + "?token=" + url.QueryEscape(tok)
	if f.json {
		return printJSON(stdout, stderr, info)
	}
	fmt.Fprintf(stdout, "console:    %s\n", info.URL)
	if info.TokenRequired {
		fmt.Fprintf(stdout, "token:      %s\n", tok)
		fmt.Fprintf(stdout, "open:       %s\n", info.Open)
		fmt.Fprintln(stdout, "            (sets a cookie; scripts send \"Authorization: Bearer TOKEN\")")
	} else {
		fmt.Fprintf(stdout, "token:      %s (not needed: the console listens on loopback)\n", tok)
	}
	note := ""
	if created {
		note = " (created now)"
	}
	fmt.Fprintf(stdout, "token file: %s%s\n", path, note)
	return 0
}

// consoleAddress is the console's URL as a browser elsewhere reaches it:
// a wildcard listen address becomes the host's name.
func consoleAddress(cfg *config.Config) string {
	host, port, err := net.SplitHostPort(cfg.Metrics.Listen)
	if err != nil {
		return cfg.Metrics.Listen
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		if h, err := os.Hostname(); err == nil {
			host = h
		}
	}
	scheme := "http"
	if cfg.Metrics.HTTPS {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, port) + console.Prefix
}
