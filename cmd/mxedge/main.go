// Command mxedge is the on-premises edge daemon for a cloud NAC. It is kept
// thin: flags and exit codes here, everything else in package edge.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/mxedge/mxedge/cloudlink"
	"github.com/mxedge/mxedge/edge"
	"github.com/mxedge/mxedge/edge/config"
)

var version = "0.0.0-dev"

const defaultConfig = "/etc/mxedge/config.yaml"

const usage = `mxedge — on-premises edge for a cloud NAC

Usage:
  mxedge run          [--config FILE]   run the daemon (RADIUS/UDP in, RadSec to the cloud out)
  mxedge check-config [--config FILE]   validate a config; prints FILE: KEY: reason per problem, exit 1 if any
  mxedge register     --registration-code CODE [--cloud URL] [--state-dir DIR] [--cloud-ca FILE]
                                        enrol this edge with the cloud (writes the registration under state_dir)
  mxedge status       [--config FILE] [--json]
                                        mode, upstreams, last sync, cache and outbox of the running daemon
  mxedge cache ls|show MAC|purge [MAC] [--config FILE] [--json]
  mxedge cache recover FILE [--config FILE] [--json]   (daemon stopped)
                                        list, show or purge cached clients (through the daemon when it runs)
  mxedge console-token [--config FILE] [--json]
                                        the web console's address and the token it asks for off loopback
  mxedge version                        print the version

--config defaults to ` + defaultConfig + `. MXEDGE_* environment variables
override scalar keys, e.g. MXEDGE_LOG_LEVEL=debug for log.level.
`

func main() {
	tuneGC()
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// tuneGC trades memory the daemon has plenty of for CPU: the proxy path
// allocates little but steadily, and the default GOGC=100 spends a
// noticeable share of each request in the collector. A soft memory limit
// keeps the heap bounded all the same. GOGC and GOMEMLIMIT still win.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(512 << 20)
	}
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, args := args[0], args[1:]
	fs := flag.NewFlagSet("mxedge "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", defaultConfig, "config file")
	switch cmd {
	case "version", "--version", "-v":
		fmt.Fprintf(stdout, "mxedge %s\n", version)
		return 0
	case "help", "--help", "-h":
		fmt.Fprint(stdout, usage)
		return 0
	case "status":
		return statusCmd(args, stdout, stderr)
	case "cache":
		if len(args) > 0 && args[0] == "recover" {
			return cacheRecoverCmd(args[1:], stdout, stderr)
		}
		return cacheCmd(args, stdout, stderr)
	case "console-token":
		return consoleTokenCmd(args, stdout, stderr)
	case "check-config":
		if err := fs.Parse(args); err != nil {
			return 2
		}
		cfg, err := config.Load(*cfgPath)
		if err != nil {
			fmt.Fprintln(stderr, describe(*cfgPath, err))
			return 1
		}
		for _, w := range cfg.Warnings() {
			fmt.Fprintln(stderr, "warning:", w)
		}
		if off := cfg.RadSecListenerOff(); off != "" && len(cfg.RadSec.Listen) > 0 {
			fmt.Fprintln(stderr, "warning:", off) // the daemon logs the same at start
		}
		fmt.Fprintf(stdout, "%s: ok\n", *cfgPath)
		return 0
	case "register":
		code := fs.String("registration-code", "", "one-time registration code from the cloud")
		cloudURL := fs.String("cloud", "", "cloud API URL (default: cloud.api_url)")
		stateDir := fs.String("state-dir", "", "state directory (default: state_dir)")
		caFile := fs.String("cloud-ca", "", "extra CA file to trust for the API (lab clouds)")
		if err := fs.Parse(args); err != nil {
			return 2
		}
		cfg, err := config.Load(*cfgPath)
		if errors.Is(err, os.ErrNotExist) {
			cfg, err = config.Default(), nil
		}
		if err != nil {
			fmt.Fprintln(stderr, describe(*cfgPath, err))
			return 1
		}
		if *code == "" {
			fmt.Fprintln(stderr, "mxedge register: --registration-code is required")
			return 2
		}
		if *cloudURL == "" {
			*cloudURL = cfg.Cloud.APIURL
		}
		if *cloudURL == "" {
			fmt.Fprintln(stderr, "mxedge register: no --cloud and no cloud.api_url in the config")
			return 2
		}
		if *stateDir == "" {
			*stateDir = cfg.StateDir
		}
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		reg, err := cloudlink.Register(ctx, *cloudURL, *code, *stateDir, cloudlink.RegisterOptions{
			CAFile: *caFile, ProxyURL: cfg.Cloud.ProxyURL, Version: version,
		})
		if err != nil {
			fmt.Fprintln(stderr, "mxedge register:", err)
			return 1
		}
		// The line operators and scripts look for.
		fmt.Fprintf(stdout, "edge %s registered (org %s, site %s)\n", reg.EdgeID, reg.OrgID, reg.SiteID)
		fmt.Fprintf(stdout, "registration finished successfully. (regfile at %s)\n", reg.Path)
		return 0
	case "run":
		if err := fs.Parse(args); err != nil {
			return 2
		}
		cfg, err := config.Load(*cfgPath)
		if err != nil {
			fmt.Fprintln(stderr, describe(*cfgPath, err))
			return 1
		}
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		err = edge.Run(ctx, edge.Options{
			ConfigPath: *cfgPath,
			Config:     cfg,
			Version:    version,
			Stderr:     stderr,
		})
		if err != nil {
			fmt.Fprintln(stderr, "mxedge:", err)
			return 1
		}
		return 0
	default:
		fmt.Fprintf(stderr, "mxedge: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
}

// describe makes a read error look like the validation errors: FILE: reason.
func describe(path string, err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Sprintf("%s: %v", path, pe.Err)
	}
	return err.Error()
}
