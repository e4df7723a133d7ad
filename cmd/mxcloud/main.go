package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mxedge/mxedge/cloudlink"
	"github.com/mxedge/mxedge/cloudlink/labcloud"
	"github.com/mxedge/mxedge/cmd/internal/labnac"
	"github.com/mxedge/mxedge/proxy/radsec"
)

const usage = `mxcloud — LAB cloud for mxedge (demos and tests only; not a product)

It serves the edge API of docs/cloud-api.md over HTTPS and a RadSec NAC (MAB
allow-list; EAP-TLS against --org-ca), both on loopback, from a lab CA it
generates in --dir on first start.

Usage:
  mxcloud serve [--dir DIR] [--api 127.0.0.1:PORT] [--radsec 127.0.0.1:PORT]
                [--mab aabbccddeeff=41,...] [--mab-file FILE] [--code CODE]
                [--seed N] [--lose-cursor] [--org-ca FILE [--org-crl FILE,...]]
                [--eap-cert FILE --eap-key FILE] [--eap-vlan CN=VLAN,...]
                [--client NAME=CIDR:SECRET ...] [--cluster NAME --edges N]
      Prints "mxcloud ready api=URL radsec=ADDR ca=FILE code=CODE codes=CODE,..."
      once serving: one registration code per edge (--edges) of the cluster.
  mxcloud code        [--dir DIR]   issue a registration code (asks the running serve)
  mxcloud stats       [--dir DIR]   print the lab counters (edges, auths, events unique/duplicate)
  mxcloud event-types [--dir DIR]   print the events received, counted by type (TYPE=N)
  mxcloud lose-cursor [--dir DIR]   forget every edge's sync cursor: next syncs are full
  mxcloud demo        [flags]       run the whole product on loopback and print what happened
  mxcloud help

--dir defaults to ./mxcloud-lab. Admin calls go to GET/POST /lab/v1/{stats,event-types,
codes,lose-cursor,forget?mac=} on the API port, loopback peers only.
`

const defaultDir = "mxcloud-lab"

// endpointsFile tells the other subcommands where serve listens.
const endpointsFile = "endpoints.json"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, args := args[0], args[1:]
	var err error
	switch cmd {
	case "help", "--help", "-h":
		fmt.Fprint(stdout, usage)
		return 0
	case "serve":
		err = serveCmd(ctx, args, stdout, stderr)
	case "code", "stats", "event-types", "lose-cursor":
		err = adminCmd(ctx, cmd, args, stdout, stderr)
	case "demo":
		err = demoCmd(ctx, args, stdout)
	default:
		fmt.Fprintf(stderr, "mxcloud: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "mxcloud:", err)
		return 1
	}
	return 0
}

type serveFlags struct {
	dir, api, radsec   string
	mab, mabFile, code string
	seed               int
	loseCursor         bool
	mabVLAN, dot1xVLAN string
	ttlDays            int
	orgCA, orgCRL      string
	eap                labnac.Options
	clients            labnac.ClientsFlag
	cluster            string
	edges              int
}

func serveCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f serveFlags
	fs := flag.NewFlagSet("mxcloud serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.dir, "dir", defaultDir, "state directory (lab CA, edges, cache, events)")
	fs.StringVar(&f.api, "api", "127.0.0.1:0", "edge API listen address (loopback)")
	fs.StringVar(&f.radsec, "radsec", "127.0.0.1:0", "RadSec NAC listen address (loopback)")
	fs.StringVar(&f.mab, "mab", "", "MAB allow-list: MAC=VLAN,... (any MAC notation)")
	fs.StringVar(&f.mabFile, "mab-file", "", "MAB allow-list file: one MAC=VLAN a line, # comments")
	fs.StringVar(&f.code, "code", "", "a registration code to accept (default: a new random one)")
	fs.IntVar(&f.seed, "seed", 0, "add N synthetic MAB entries to the served cache (sync tests)")
	fs.BoolVar(&f.loseCursor, "lose-cursor", false, "forget every sync cursor at start (forces full resyncs)")
	fs.StringVar(&f.mabVLAN, "default-mab-vlan", "41", "survivability default MAB VLAN pushed to edges")
	fs.StringVar(&f.dot1xVLAN, "default-dot1x-vlan", "51", "survivability default 802.1X VLAN pushed to edges")
	fs.IntVar(&f.ttlDays, "cache-ttl-days", 7, "survivability caching period pushed to edges")
	fs.StringVar(&f.orgCA, "org-ca", "", "PEM file of org CA certificates pushed to edges (offline EAP-TLS)")
	fs.StringVar(&f.orgCRL, "org-crl", "", "comma-separated PEM CRL files pushed with --org-ca")
	f.eap.Register(fs)
	fs.StringVar(&f.cluster, "cluster", "", "edge cluster that registering edges join (see docs/radsec-listener.md)")
	fs.IntVar(&f.edges, "edges", 1, "registration codes to issue, one per edge of the cluster; printed as codes=A,B,...")
	fs.Var(&f.clients, "client", "RADIUS client pushed to edges: NAME=IP-or-CIDR:SECRET (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for _, a := range []string{f.api, f.radsec} {
		if err := loopbackOnly(a); err != nil {
			return err
		}
	}
	mab, err := parseMAB(f.mab)
	if err != nil {
		return err
	}
	if f.mabFile != "" {
		b, err := os.ReadFile(f.mabFile)
		if err != nil {
			return err
		}
		more, err := parseMAB(string(b))
		if err != nil {
			return fmt.Errorf("%s: %w", f.mabFile, err)
		}
		for k, v := range more {
			mab[k] = v
		}
	}
	orgCA, err := loadOrgCA(f.orgCA, f.orgCRL)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	cl, err := labcloud.Open(labcloud.Options{
		Dir: f.dir, MAB: mab, Logger: log, OrgCA: orgCA, RADIUSClients: f.clients, Cluster: f.cluster,
		Survivability: cloudlink.Survivability{Enabled: true, CacheTTLDays: f.ttlDays,
			DefaultMABVLAN: f.mabVLAN, DefaultDot1XVLAN: f.dot1xVLAN},
	})
	if err != nil {
		return err
	}
	if f.loseCursor {
		cl.LoseCursors()
	}
	if f.seed > 0 {
		cl.UpsertMany(seedEntries(f.seed, time.Now()))
	}
	code := f.code
	if code == "" {
		code = cl.NewCode()
	} else {
		cl.AddCode(code)
	}
	codes := []string{code}
	for len(codes) < f.edges {
		codes = append(codes, cl.NewCode())
	}

	apiTLS, err := cl.APITLS()
	if err != nil {
		return err
	}
	rsTLS, err := cl.RadSecTLS()
	if err != nil {
		return err
	}
	apiLn, err := net.Listen("tcp", f.api)
	if err != nil {
		return fmt.Errorf("--api: %w", err)
	}
	rsLn, err := net.Listen("tcp", f.radsec)
	if err != nil {
		apiLn.Close()
		return fmt.Errorf("--radsec: %w", err)
	}
	apiURL := "https://" + apiLn.Addr().String()
	cl.SetEndpoints(apiURL, rsLn.Addr().String())

	hs := &http.Server{Handler: cl.Handler(), TLSConfig: apiTLS, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	n, err := labnac.New(cl, log, f.eap, orgCA, f.dot1xVLAN)
	if err != nil {
		apiLn.Close()
		rsLn.Close()
		return err
	}
	defer n.Close(context.Background())
	rs, err := radsec.NewServer(radsec.ServerConfig{Handler: n, Logger: log.With("component", "radsec"),
		Registerer: prometheus.NewRegistry()})
	if err != nil {
		return err
	}
	errc := make(chan error, 2)
	go func() { errc <- hs.Serve(tls.NewListener(apiLn, apiTLS)) }()
	go func() { errc <- rs.Serve(tls.NewListener(rsLn, rsTLS)) }()

	ep, _ := json.Marshal(map[string]string{"api": apiURL, "radsec": rsLn.Addr().String()})
	if err := os.WriteFile(filepath.Join(f.dir, endpointsFile), ep, 0o644); err != nil {
		log.Warn("writing endpoints file", "err", err)
	}
	fmt.Fprintf(stdout, "mxcloud ready api=%s radsec=%s ca=%s code=%s codes=%s\n", apiURL, rsLn.Addr(), cl.CAFile(), code, strings.Join(codes, ","))

	select {
	case <-ctx.Done():
	case err := <-errc:
		log.Error("listener stopped", "err", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = hs.Shutdown(sctx)
	_ = rs.Shutdown(sctx)
	os.Remove(filepath.Join(f.dir, endpointsFile))
	return nil
}

func loopbackOnly(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%s: the lab cloud listens on loopback only", addr)
	}
	return nil
}

func loadOrgCA(caFile, crlFiles string) (*cloudlink.OrgCA, error) {
	if caFile == "" {
		if crlFiles != "" {
			return nil, errors.New("--org-crl needs --org-ca")
		}
		return nil, nil
	}
	b, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("--org-ca: %w", err)
	}
	if !x509.NewCertPool().AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("--org-ca %s: no PEM certificates", caFile)
	}
	o := &cloudlink.OrgCA{Certificates: string(b)}
	for _, p := range strings.Split(crlFiles, ",") {
		if p == "" {
			continue
		}
		crl, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("--org-crl: %w", err)
		}
		o.CRLs = append(o.CRLs, string(crl))
	}
	return o, nil
}

// parseMAB reads MAC=VLAN items separated by commas, blanks or newlines.
func parseMAB(s string) (map[string]string, error) {
	out := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		for _, item := range strings.FieldsFunc(line, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
			mac, vlan, ok := strings.Cut(item, "=")
			n, okMAC := labcloud.NormalizeMAC(mac)
			if !ok || !okMAC || vlan == "" {
				return nil, fmt.Errorf("MAB item %q: want MAC=VLAN", item)
			}
			out[n] = vlan
		}
	}
	return out, sc.Err()
}

// seedEntries makes n MAB entries 02:00:xx:xx:xx:xx in VLAN 100.
func seedEntries(n int, now time.Time) []cloudlink.Entry {
	es := make([]cloudlink.Entry, n)
	for i := range es {
		mac := fmt.Sprintf("0200%08x", i)
		es[i] = cloudlink.Entry{MAC: mac, AuthType: "mab", Identity: cloudlink.Identity{UserName: mac},
			Authorization: cloudlink.Authorization{VLAN: "100"}, SiteID: "site-lab", LastAuthAt: now.UTC()}
	}
	return es
}

// adminCmd calls the running serve's loopback admin API.
func adminCmd(ctx context.Context, cmd string, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mxcloud "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", defaultDir, "the serve's state directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	b, err := os.ReadFile(filepath.Join(*dir, endpointsFile))
	if err != nil {
		return fmt.Errorf("is mxcloud serve running with --dir %s? %w", *dir, err)
	}
	var ep map[string]string
	if err := json.Unmarshal(b, &ep); err != nil {
		return err
	}
	caPEM, err := os.ReadFile(filepath.Join(*dir, "ca.pem"))
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		Proxy:           nil,
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
	}}
	method, path := http.MethodPost, "/lab/v1/"+cmd+"s"
	switch cmd {
	case "stats":
		method, path = http.MethodGet, "/lab/v1/stats"
	case "event-types":
		method, path = http.MethodGet, "/lab/v1/event-types"
	case "lose-cursor":
		path = "/lab/v1/lose-cursor"
	}
	req, err := http.NewRequestWithContext(ctx, method, ep["api"]+path, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	var out map[string]any
	if err := json.Unmarshal(body, &out); err != nil {
		return err
	}
	if cmd == "code" {
		fmt.Fprintln(stdout, out["code"])
		return nil
	}
	keys := make([]string, 0, len(out))
	for k := range out {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := out[k]
		if f, ok := v.(float64); ok {
			v = strconv.FormatFloat(f, 'f', -1, 64)
		}
		fmt.Fprintf(stdout, "%s=%v\n", k, v)
	}
	return nil
}
