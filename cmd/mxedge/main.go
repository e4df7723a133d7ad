// Command mxedge is the on-premises edge daemon for a cloud NAC. It is kept
// thin: flags and exit codes here, everything else in package edge.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/mxedge/mxedge/edge"
	"github.com/mxedge/mxedge/edge/config"
)

var version = "0.0.0-dev"

const defaultConfig = "/etc/mxedge/config.yaml"

const usage = `mxedge — on-premises edge for a cloud NAC

Usage:
  mxedge run          [--config FILE]   run the daemon (RADIUS/UDP in, RadSec to the cloud out)
  mxedge check-config [--config FILE] [--user NAME]
                                        validate a config and the files it names; prints FILE: KEY: reason
                                        per problem, exit 1 if any
  mxedge register     --registration-code CODE [--config FILE] [--cloud URL] [--state-dir DIR]
                      [--cloud-ca FILE] [--user NAME]
                                        enrol this edge with the cloud (writes the registration under
                                        state_dir, owned by the service user) and tell a running daemon
  mxedge status       [--config FILE] [--state-dir DIR] [--json]
                                        mode, upstreams, last sync, cache and outbox of the running daemon
  mxedge cache ls|show MAC|purge [MAC] [--config FILE] [--state-dir DIR] [--json]
  mxedge cache recover FILE [--config FILE] [--json]   (daemon stopped)
                                        list, show or purge cached clients (through the daemon when it runs)
  mxedge console-token [--config FILE] [--json]
                                        the web console's address and the token it asks for off loopback
  mxedge version                        version, commit, Go version and the libcrypto signer

--config defaults to ` + defaultConfig + `; a --config FILE that does not exist is
an error. MXEDGE_* environment variables override scalar keys, e.g.
MXEDGE_LOG_LEVEL=debug for log.level. ` + "`mxedge COMMAND --help`" + ` shows a command's flags.
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
	switch cmd {
	case "version", "--version", "-v":
		if code, done := parseOnly("version", args, stdout, stderr); done {
			return code
		}
		printVersion(stdout)
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
		return checkConfigCmd(args, stdout, stderr)
	case "register":
		return registerCmd(args, stdout, stderr)
	case "run":
		fs, cfgPath := newFlags("run", stdout, stderr)
		if code, done := parseHelpToStdout(fs, args, stdout); done {
			return code
		}
		cfg, err := loadChecked(*cfgPath, nil)
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

// loadChecked is the one validation check-config and run share: the file
// (config.Load) and the files it names (CheckFiles), as the account as
// (nil: this process) would read them.
func loadChecked(path string, as *config.Account) (*config.Config, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	if err := cfg.CheckFiles(config.FileCheck{As: as}); err != nil {
		return nil, err
	}
	return cfg, nil
}

// checkConfigCmd implements `mxedge check-config [--config FILE] [--user NAME]`.
func checkConfigCmd(args []string, stdout, stderr io.Writer) int {
	fs, cfgPath := newFlags("check-config", stdout, stderr)
	userName := fs.String("user", serviceUser, "account the daemon runs as: files must be readable by it (checked when run as root)")
	if code, done := parseHelpToStdout(fs, args, stdout); done {
		return code
	}
	var as *config.Account
	if os.Geteuid() == 0 && *userName != "" && *userName != "root" {
		a, err := config.LookupAccount(*userName)
		switch {
		case err == nil:
			as = a
		case flagSet(fs, "user"):
			fmt.Fprintf(stderr, "mxedge check-config: --user %s: %v\n", *userName, err)
			return 2
		}
	}
	cfg, err := loadChecked(*cfgPath, as)
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
}

// describe makes a read error look like the validation errors: FILE: reason.
func describe(path string, err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Sprintf("%s: %v", path, pe.Err)
	}
	return err.Error()
}
