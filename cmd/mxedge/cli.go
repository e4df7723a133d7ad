package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/mxedge/mxedge/cloudlink"
	"github.com/mxedge/mxedge/edge"
	"github.com/mxedge/mxedge/edge/config"
)

// serviceUser is the account the packaged unit runs the daemon as
// (systemd/mxedge.service User=): the files check-config checks and
// register writes must be readable by it.
const serviceUser = "mxedge"

// synopses are each command's usage line, printed by --help (exit 0) and
// on a flag error (exit 2). The man page's SYNOPSIS must list the same
// flags (TestManPageSynopsis).
var synopses = map[string]string{
	"run":           "mxedge run [--config FILE]",
	"check-config":  "mxedge check-config [--config FILE] [--user NAME]",
	"register":      "mxedge register --registration-code CODE [--config FILE] [--cloud URL] [--state-dir DIR] [--cloud-ca FILE] [--user NAME]",
	"status":        "mxedge status [--config FILE] [--state-dir DIR] [--json]",
	"cache":         "mxedge cache ls|show MAC|purge [MAC] [--config FILE] [--state-dir DIR] [--json]",
	"cache recover": "mxedge cache recover FILE [--config FILE] [--json]",
	"console-token": "mxedge console-token [--config FILE] [--json]",
	"version":       "mxedge version",
}

// newFlags returns a command's flag set with --config, printing its usage
// to stdout for --help and to stderr otherwise.
func newFlags(cmd string, stdout, stderr io.Writer) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("mxedge "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg *string
	if cmd != "version" {
		cfg = fs.String("config", defaultConfig, "config file; one that does not exist is an error")
	}
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "usage: %s\n", synopses[cmd])
		fs.PrintDefaults()
	}
	return fs, cfg
}

// parse parses args; done is true when the command must exit with code:
// 0 after --help (usage on stdout), 2 after a bad flag.
func parse(fs *flag.FlagSet, args []string) (code int, done bool) {
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0, true
	case err != nil:
		return 2, true
	}
	return 0, false
}

// parseHelpToStdout is parse for a flag set whose --help must print on
// stdout: the usage goes to out for -h/--help only.
func parseHelpToStdout(fs *flag.FlagSet, args []string, stdout io.Writer) (int, bool) {
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "-h" || a == "--help" || a == "-help" {
			fs.SetOutput(stdout)
			fs.Usage()
			return 0, true
		}
	}
	return parse(fs, args)
}

// parseOnly parses a command that takes no flags but --help.
func parseOnly(cmd string, args []string, stdout, stderr io.Writer) (int, bool) {
	fs, _ := newFlags(cmd, stdout, stderr)
	if code, done := parseHelpToStdout(fs, args, stdout); done {
		return code, true
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "mxedge %s: unexpected argument %q\n", cmd, fs.Arg(0))
		return 2, true
	}
	return 0, false
}

// flagSet reports whether the command line set the flag name.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// loadConfig loads path for a command other than run. A --config FILE
// that does not exist is an error; the default file may be absent (the
// defaults, with MXEDGE_* applied, are used).
func loadConfig(path string, explicit bool) (*config.Config, error) {
	cfg, err := config.Load(path)
	if errors.Is(err, os.ErrNotExist) && !explicit {
		return config.Parse(path+" (absent: defaults)", nil)
	}
	return cfg, err
}

// printVersion prints what a bug report needs: version, commit, Go and
// whether this binary has the libcrypto RSA signer (a cgo build).
func printVersion(w io.Writer) {
	commit, modified, cgo := "unknown", false, false
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			case "CGO_ENABLED":
				cgo = s.Value == "1"
			}
		}
	}
	if modified {
		commit += " (modified)"
	}
	signer := "not built in (no cgo): local EAP-TLS signs RSA in Go"
	if cgo {
		signer = "built in: local EAP-TLS signs RSA through libcrypto when libssl3 is installed (MXEDGE_LIBCRYPTO=off turns it off)"
	}
	fmt.Fprintf(w, "mxedge %s\ncommit: %s\ngo: %s %s/%s\nlibcrypto signer: %s\n", version, commit,
		runtime.Version(), runtime.GOOS, runtime.GOARCH, signer)
}

// registerCmd implements `mxedge register`. Run as root (as the install
// docs show), it hands the files it wrote to the service user, whose
// daemon must read them; then it tells a running daemon, which starts its
// cloud link at once.
func registerCmd(args []string, stdout, stderr io.Writer) int {
	fl, cfgPath := newFlags("register", stdout, stderr)
	code := fl.String("registration-code", "", "one-time registration code from the cloud")
	cloudURL := fl.String("cloud", "", "cloud API URL (default: cloud.api_url)")
	stateDir := fl.String("state-dir", "", "state directory (default: state_dir)")
	caFile := fl.String("cloud-ca", "", "extra CA file to trust for the API (lab clouds)")
	userName := fl.String("user", serviceUser, "account the daemon runs as; run as root, register gives it the files")
	if c, done := parseHelpToStdout(fl, args, stdout); done {
		return c
	}
	if *code == "" {
		fmt.Fprintln(stderr, "mxedge register: --registration-code is required")
		return 2
	}
	cfg, err := loadConfig(*cfgPath, flagSet(fl, "config"))
	if err != nil {
		fmt.Fprintln(stderr, describe(*cfgPath, err))
		return 1
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
	owner, err := registrationOwner(*userName, flagSet(fl, "user"))
	if err != nil {
		fmt.Fprintln(stderr, "mxedge register:", err)
		return 2
	}
	_, statErr := os.Stat(*stateDir)
	created := errors.Is(statErr, fs.ErrNotExist)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	reg, err := cloudlink.Register(ctx, *cloudURL, *code, *stateDir, cloudlink.RegisterOptions{
		CAFile: *caFile, ProxyURL: cfg.Cloud.ProxyURL, Version: version,
	})
	files := registrationFiles(*stateDir)
	if owner != nil {
		// Also after a failure: the key is written before the cloud answers.
		if cerr := giveFiles(owner, *stateDir, created, files); cerr != nil && err == nil {
			err = cerr
		}
	}
	if err != nil {
		if errors.Is(err, fs.ErrPermission) && os.Geteuid() != 0 {
			fmt.Fprintf(stderr, "mxedge register: %v\n  %s is not writable by you; run it as root, which gives the files to user %s:\n  sudo %s\n",
				err, *stateDir, *userName, shellCommand(os.Args))
			return 1
		}
		fmt.Fprintln(stderr, "mxedge register:", err)
		return 1
	}
	fmt.Fprintf(stdout, "edge %s registered (org %s, site %s)\n", reg.EdgeID, reg.OrgID, reg.SiteID)
	// The line operators and scripts look for.
	fmt.Fprintf(stdout, "registration finished successfully. (regfile at %s)", reg.Path)
	if owner != nil {
		fmt.Fprintf(stdout, " (owned by %s)", owner.name)
	}
	fmt.Fprintln(stdout)
	tellDaemon(stdout, stderr, *stateDir)
	return 0
}

// owner is who the registration files are given to.
type owner struct {
	name     string
	uid, gid int
}

// registrationOwner is the service user when register runs as root and
// that user exists; nil otherwise (the files stay the caller's). A --user
// that does not exist is an error; the default one may be missing on a
// host without the package.
func registrationOwner(name string, explicit bool) (*owner, error) {
	if os.Geteuid() != 0 || name == "" || name == "root" {
		return nil, nil
	}
	a, err := config.LookupAccount(name)
	if err != nil {
		if explicit {
			return nil, fmt.Errorf("--user %s: %v", name, err)
		}
		return nil, nil
	}
	return &owner{name: name, uid: a.UID, gid: a.GIDs[0]}, nil
}

// registrationFiles are the files cloudlink.Register writes under dir.
func registrationFiles(dir string) []string {
	return []string{
		filepath.Join(dir, cloudlink.RegFile),
		filepath.Join(dir, cloudlink.CertFile),
		filepath.Join(dir, cloudlink.KeyFile),
		filepath.Join(dir, cloudlink.CAFile),
	}
}

// giveFiles chowns the registration files (and the state directory, when
// register created it) to o. Modes stay as cloudlink wrote them: the key
// 0600, the registration 0640, certificates 0644.
func giveFiles(o *owner, dir string, created bool, files []string) error {
	if created {
		if err := os.Chown(dir, o.uid, o.gid); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	for _, f := range files {
		if err := os.Lchown(f, o.uid, o.gid); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("giving %s to %s: %w", f, o.name, err)
		}
	}
	return nil
}

// tellDaemon asks a running daemon to pick the registration up now.
func tellDaemon(stdout, stderr io.Writer, stateDir string) {
	ctx, cancel := context.WithTimeout(context.Background(), controlTimeout)
	defer cancel()
	resp, err := edge.AskControl(ctx, edge.ControlPath(stateDir), edge.ControlRequest{Cmd: edge.CmdRegistered})
	switch {
	case errors.Is(err, edge.ErrNoDaemon):
		fmt.Fprintln(stdout, "no daemon running here; it uses the registration when it starts (systemctl start mxedge)")
	case err != nil:
		fmt.Fprintf(stderr, "mxedge register: the running daemon was not told (%v); systemctl reload mxedge picks the registration up\n", err)
	case resp.Error != "":
		fmt.Fprintf(stderr, "mxedge register: the running daemon could not use the registration: %s\n", resp.Error)
	default:
		fmt.Fprintln(stdout, "the running daemon picked the registration up: cloud link started")
	}
}

// shellCommand quotes args for a command line to copy.
func shellCommand(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\$`;&|<>()*?[]#~") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		q[i] = a
	}
	if len(q) > 0 && !strings.Contains(q[0], "/") {
		q[0] = "mxedge"
	}
	return strings.Join(q, " ")
}
