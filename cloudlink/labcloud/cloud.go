package labcloud

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mxedge/mxedge/cloudlink"
)

// Options configure a Cloud.
type Options struct {
	Dir    string // state, CA; created if missing
	OrgID  string // default "org-lab"
	SiteID string // default "site-lab"
	// MAB is the allow-list: normalized MAC (12 lower-case hex) → VLAN.
	MAB           map[string]string
	Survivability cloudlink.Survivability
	// OrgCA, when set, is pushed to edges for offline EAP-TLS.
	OrgCA *cloudlink.OrgCA
	// RADIUSClients are pushed to edges as their RADIUS clients
	// (SetRADIUSClients changes them while serving).
	RADIUSClients []cloudlink.RADIUSClient
	// Cluster names the edge cluster that every edge registering here
	// joins: edges of one cluster each register with their own code and
	// sync the same clients, each keeping its own cache and outbox, so
	// that devices can fail over between them. Empty: no cluster.
	Cluster string
	Now     func() time.Time
	Logger  *slog.Logger
}

// Cloud is the lab cloud's state and handlers. It is safe for concurrent use.
type Cloud struct {
	opts Options
	log  *slog.Logger
	ca   *ca

	mu        sync.Mutex
	st        *state
	apiURL    string
	radsecURL string
}

// Open loads (or creates) the lab cloud in opts.Dir.
func Open(opts Options) (*Cloud, error) {
	if opts.Dir == "" {
		return nil, errors.New("labcloud: no state directory")
	}
	if opts.OrgID == "" {
		opts.OrgID = "org-lab"
	}
	if opts.SiteID == "" {
		opts.SiteID = "site-lab"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Survivability == (cloudlink.Survivability{}) {
		opts.Survivability = cloudlink.Survivability{Enabled: true, CacheTTLDays: 7, DefaultMABVLAN: "41", DefaultDot1XVLAN: "51"}
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, err
	}
	if abs, err := filepath.Abs(opts.Dir); err == nil {
		opts.Dir = abs
	}
	c, err := loadOrCreateCA(opts.Dir, opts.Now)
	if err != nil {
		return nil, err
	}
	st, err := loadState(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("labcloud: state: %w", err)
	}
	cl := &Cloud{opts: opts, log: opts.Logger, ca: c, st: st}
	if st.Epoch == "" {
		st.Epoch = randHex(4)
		if err := st.save(opts.Dir); err != nil {
			return nil, err
		}
	}
	return cl, nil
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// CAFile is the lab CA certificate's path: what edges and tools trust.
func (c *Cloud) CAFile() string { return filepath.Join(c.opts.Dir, caCertFile) }

// SetEndpoints records where the API and RadSec listeners are bound, for
// registration answers.
func (c *Cloud) SetEndpoints(apiURL, radsecAddr string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.apiURL, c.radsecURL = apiURL, radsecAddr
}

// APITLS is the API listener's config: the lab server certificate, and
// client certificates verified against the lab CA when presented (all
// calls but register require one; the handler checks).
func (c *Cloud) APITLS() (*tls.Config, error) {
	cert, err := c.ca.serverCert()
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    c.ca.pool(),
		MinVersion:   tls.VersionTLS12,
	}, nil
}

// RadSecTLS is the NAC listener's config: mutual TLS against the lab CA.
func (c *Cloud) RadSecTLS() (*tls.Config, error) {
	cert, err := c.ca.serverCert()
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    c.ca.pool(),
		MinVersion:   tls.VersionTLS12,
	}, nil
}

// save persists the state; callers hold mu. A failed save is logged: the
// lab keeps serving from memory.
func (c *Cloud) save() {
	if err := c.st.save(c.opts.Dir); err != nil {
		c.log.Error("labcloud: saving state", "err", err)
	}
}

// NewCode issues a one-time registration code.
func (c *Cloud) NewCode() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := strings.ToUpper(randHex(3) + "-" + randHex(3))
	c.st.Codes[s] = &code{Created: c.opts.Now()}
	c.save()
	return s
}

// AddCode adds a code chosen by the operator (for scripted demos).
func (c *Cloud) AddCode(s string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.st.Codes[s]; !ok {
		c.st.Codes[s] = &code{Created: c.opts.Now()}
		c.save()
	}
}

// LoseCursors forgets every sync cursor: each edge's next sync gets 410
// and resyncs in full.
func (c *Cloud) LoseCursors() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.st.Epoch = randHex(4)
	c.save()
	c.log.Info("labcloud: cursors forgotten", "epoch", c.st.Epoch)
}

func entryKey(mac, identity string) string {
	if identity == "" {
		return mac
	}
	return mac + "/" + identity
}

// Upsert adds or replaces a cache entry served to edges.
func (c *Cloud) Upsert(e cloudlink.Entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.upsertLocked(e)
	c.save()
}

// UpsertMany adds entries with one state write (seeding).
func (c *Cloud) UpsertMany(es []cloudlink.Entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range es {
		c.upsertLocked(e)
	}
	c.save()
}

func (c *Cloud) upsertLocked(e cloudlink.Entry) {
	id := ""
	if e.AuthType == "eap-tls" {
		id = e.Key().Identity
	}
	c.st.Seq++
	c.st.Records[entryKey(e.MAC, id)] = &record{Seq: c.st.Seq, Entry: &e, MAC: e.MAC, ID: id}
}

// Forget tombstones every entry of mac; it returns how many.
func (c *Cloud) Forget(mac string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, r := range c.st.Records {
		if r.MAC == mac && r.Entry != nil {
			c.st.Seq++
			r.Seq, r.Entry = c.st.Seq, nil
			n++
		}
	}
	c.save()
	return n
}

// Stats is GET /lab/v1/stats.
type Stats struct {
	Edges            int `json:"edges"`
	CodesUnused      int `json:"codes_unused"`
	CacheEntries     int `json:"cache_entries"`
	Tombstones       int `json:"tombstones"`
	Auths            int `json:"auths"`
	Accepts          int `json:"accepts"`
	Accounting       int `json:"accounting"`
	EventsUnique     int `json:"events_unique"`
	EventsReceived   int `json:"events_received"`
	EventsDuplicates int `json:"events_duplicates"`
	Heartbeats       int `json:"heartbeats"`
	// Clusters lists the edge IDs registered in each cluster.
	Clusters map[string][]string `json:"clusters,omitempty"`
}

// Stats counts what the lab cloud holds.
func (c *Cloud) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := Stats{Edges: len(c.st.Edges), Accounting: c.st.Accounting, EventsUnique: len(c.st.Events),
		EventsReceived: c.st.EventsReceived, EventsDuplicates: c.st.EventsDuplicates, Auths: len(c.st.Auths)}
	for _, cd := range c.st.Codes {
		if cd.EdgeID == "" {
			s.CodesUnused++
		}
	}
	for _, r := range c.st.Records {
		if r.Entry != nil {
			s.CacheEntries++
		} else {
			s.Tombstones++
		}
	}
	for _, a := range c.st.Auths {
		if a.Result == "accept" {
			s.Accepts++
		}
	}
	for _, e := range c.st.Edges {
		if e.Cluster != "" {
			if s.Clusters == nil {
				s.Clusters = map[string][]string{}
			}
			s.Clusters[e.Cluster] = append(s.Clusters[e.Cluster], e.ID)
		}
		if !e.LastHeartbeat.IsZero() {
			s.Heartbeats++
		}
	}
	return s
}

// Handler serves the edge API under /v1 and the lab admin API under
// /lab/v1 (loopback peers only).
func (c *Cloud) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+cloudlink.PathRegister, c.register)
	mux.HandleFunc("GET "+cloudlink.PathConfig, c.edgeOnly(c.config))
	mux.HandleFunc("GET "+cloudlink.PathCache, c.edgeOnly(c.cache))
	mux.HandleFunc("POST "+cloudlink.PathEvents, c.edgeOnly(c.events))
	mux.HandleFunc("POST "+cloudlink.PathHeartbeat, c.edgeOnly(c.heartbeat))
	mux.HandleFunc("GET /lab/v1/stats", c.loopback(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, c.Stats())
	}))
	mux.HandleFunc("GET /lab/v1/event-types", c.loopback(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, c.EventTypes())
	}))
	mux.HandleFunc("POST /lab/v1/codes", c.loopback(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"code": c.NewCode()})
	}))
	mux.HandleFunc("POST /lab/v1/lose-cursor", c.loopback(func(w http.ResponseWriter, r *http.Request) {
		c.LoseCursors()
		writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
	}))
	mux.HandleFunc("POST /lab/v1/forget", c.loopback(func(w http.ResponseWriter, r *http.Request) {
		mac, ok := NormalizeMAC(r.URL.Query().Get("mac"))
		if !ok {
			writeError(w, http.StatusBadRequest, cloudlink.CodeBadRequest, "mac: not a MAC address")
			return
		}
		writeJSON(w, http.StatusOK, map[string]int{"forgotten": c.Forget(mac)})
	}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, cloudlink.CodeNotFound, r.Method+" "+r.URL.Path+": no such endpoint")
	})
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, cloudlink.Error{Code: code, Message: msg})
}

func (c *Cloud) loopback(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			writeError(w, http.StatusForbidden, cloudlink.CodeUnauthorized, "lab admin API is loopback only")
			return
		}
		h(w, r)
	}
}

// edgeOnly requires a verified registration certificate of a known edge.
func (c *Cloud) edgeOnly(h func(http.ResponseWriter, *http.Request, string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
			writeError(w, http.StatusUnauthorized, cloudlink.CodeUnauthorized, "a registration client certificate is required")
			return
		}
		id := r.TLS.VerifiedChains[0][0].Subject.CommonName
		c.mu.Lock()
		_, ok := c.st.Edges[id]
		c.mu.Unlock()
		if !ok {
			writeError(w, http.StatusUnauthorized, cloudlink.CodeUnauthorized, "unknown edge "+strconv.Quote(id))
			return
		}
		h(w, r, id)
	}
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<20))
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, cloudlink.CodeBadRequest, "body: "+err.Error())
		return false
	}
	return true
}

func (c *Cloud) register(w http.ResponseWriter, r *http.Request) {
	var req cloudlink.RegisterRequest
	if !decode(w, r, &req) {
		return
	}
	blk, _ := pem.Decode([]byte(req.CSR))
	if blk == nil || blk.Type != "CERTIFICATE REQUEST" {
		writeError(w, http.StatusBadRequest, cloudlink.CodeBadRequest, "csr: not a PEM CERTIFICATE REQUEST")
		return
	}
	csr, err := x509.ParseCertificateRequest(blk.Bytes)
	if err == nil {
		err = csr.CheckSignature()
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, cloudlink.CodeBadRequest, "csr: "+err.Error())
		return
	}
	spki, err := x509.MarshalPKIXPublicKey(csr.PublicKey)
	if err != nil {
		writeError(w, http.StatusBadRequest, cloudlink.CodeBadRequest, "csr: "+err.Error())
		return
	}
	sum := sha256.Sum256(spki)
	pub := hex.EncodeToString(sum[:])

	c.mu.Lock()
	defer c.mu.Unlock()
	cd, ok := c.st.Codes[strings.TrimSpace(req.Code)]
	if !ok {
		writeError(w, http.StatusForbidden, cloudlink.CodeInvalidCode, "unknown registration code")
		return
	}
	var e *edge
	if cd.EdgeID != "" {
		e = c.st.Edges[cd.EdgeID]
		if e == nil || e.PublicKey != pub {
			writeError(w, http.StatusConflict, cloudlink.CodeCodeUsed, "registration code already used by another edge")
			return
		}
	} else {
		id := "edge-" + randHex(4)
		certPEM, keyPEM, err := c.ca.newKeyPair(id)
		if err != nil {
			writeError(w, http.StatusInternalServerError, cloudlink.CodeInternal, err.Error())
			return
		}
		e = &edge{ID: id, Code: req.Code, PublicKey: pub, Hostname: req.Hostname, RegisteredAt: c.opts.Now(), Cluster: c.opts.Cluster,
			ServerCert: string(certPEM), ServerKey: string(keyPEM)}
		c.st.Edges[id] = e
		cd.EdgeID = id
	}
	cert, err := c.ca.sign(csr.PublicKey, e.ID, false)
	if err != nil {
		writeError(w, http.StatusInternalServerError, cloudlink.CodeInternal, err.Error())
		return
	}
	c.save()
	c.log.Info("labcloud: edge registered", "edge", e.ID, "hostname", req.Hostname, "cluster", e.Cluster)
	var radsec []string
	if c.radsecURL != "" {
		radsec = []string{c.radsecURL}
	}
	writeJSON(w, http.StatusOK, cloudlink.RegisterResponse{
		EdgeID: e.ID, OrgID: c.opts.OrgID, SiteID: c.opts.SiteID,
		Certificate: string(cert), CABundle: string(c.ca.certPEM),
		RadSecServers: radsec, APIURL: c.apiURL,
	})
}

// edgeConfig builds an edge's config document and its ETag.
func (c *Cloud) edgeConfig(id string) ([]byte, string) {
	c.mu.Lock()
	e := c.st.Edges[id]
	var radsec []string
	if c.radsecURL != "" {
		radsec = []string{c.radsecURL}
	}
	clients := c.opts.RADIUSClients
	c.mu.Unlock()
	s := c.opts.Survivability
	cfg := cloudlink.EdgeConfig{
		Survivability: &s,
		RADIUSClients: clients,
		RadSecServers: radsec,
		ServerCert:    &cloudlink.CertificateKey{Certificate: e.ServerCert, Key: e.ServerKey},
		OrgCA:         c.opts.OrgCA,
	}
	b, _ := json.Marshal(cfg)
	sum := sha256.Sum256(b)
	return b, `"` + hex.EncodeToString(sum[:8]) + `"`
}

func (c *Cloud) config(w http.ResponseWriter, r *http.Request, id string) {
	b, etag := c.edgeConfig(id)
	w.Header().Set("ETag", etag)
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

// Cursors are "epoch.i.SEQ" (changes after SEQ) or "epoch.f.SEQ.KEYHEX"
// (a full resync of the state as of SEQ, past key KEYHEX). A cursor of
// another epoch is unknown: 410.
func (c *Cloud) cache(w http.ResponseWriter, r *http.Request, _ string) {
	q := r.URL.Query()
	limit, _ := strconv.Atoi(q.Get("limit"))
	if limit <= 0 || limit > 10000 {
		limit = 1000
	}
	var sites []string
	if s := q.Get("site_ids"); s != "" {
		sites = strings.Split(s, ",")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	page, ok := c.pageLocked(q.Get("cursor"), limit, sites)
	if !ok {
		writeError(w, http.StatusGone, cloudlink.CodeCursorExpired, "unknown or expired cursor: resync in full")
		return
	}
	writeJSON(w, http.StatusOK, page)
}

func (c *Cloud) pageLocked(cursor string, limit int, sites []string) (*cloudlink.CachePage, bool) {
	inSite := func(e *cloudlink.Entry) bool { return len(sites) == 0 || slices.Contains(sites, e.SiteID) }
	p := &cloudlink.CachePage{Upserts: []cloudlink.Entry{}, Tombstones: []cloudlink.Tombstone{}}
	var (
		kind  string
		seq   uint64
		after string
	)
	if cursor == "" {
		kind, seq, p.FullStart = "f", c.st.Seq, true
	} else {
		parts := strings.Split(cursor, ".")
		if len(parts) < 3 || parts[0] != c.st.Epoch {
			return nil, false
		}
		n, err := strconv.ParseUint(parts[2], 10, 64)
		if err != nil || n > c.st.Seq {
			return nil, false
		}
		kind, seq = parts[1], n
		switch {
		case kind == "i" && len(parts) == 3:
		case kind == "f" && len(parts) == 4:
			b, err := hex.DecodeString(parts[3])
			if err != nil {
				return nil, false
			}
			after = string(b)
		default:
			return nil, false
		}
	}
	if kind == "f" {
		p.Full = true
		keys := make([]string, 0, len(c.st.Records))
		for k, rec := range c.st.Records {
			if rec.Entry != nil && k > after {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		last := after
		for _, k := range keys {
			if len(p.Upserts) == limit {
				p.Cursor = fmt.Sprintf("%s.f.%d.%s", c.st.Epoch, seq, hex.EncodeToString([]byte(last)))
				return p, true
			}
			if e := c.st.Records[k].Entry; inSite(e) {
				p.Upserts = append(p.Upserts, *e)
			}
			last = k
		}
		// Changes made while the full set was paged follow as increments.
		p.Final = true
		p.Cursor = fmt.Sprintf("%s.i.%d", c.st.Epoch, seq)
		return p, true
	}
	recs := make([]*record, 0)
	for _, rec := range c.st.Records {
		if rec.Seq > seq {
			recs = append(recs, rec)
		}
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].Seq < recs[j].Seq })
	last := seq
	for i, rec := range recs {
		if i == limit {
			p.Cursor = fmt.Sprintf("%s.i.%d", c.st.Epoch, last)
			return p, true
		}
		if rec.Entry == nil {
			p.Tombstones = append(p.Tombstones, cloudlink.Tombstone{MAC: rec.MAC, Identity: rec.ID})
		} else if inSite(rec.Entry) {
			p.Upserts = append(p.Upserts, *rec.Entry)
		}
		last = rec.Seq
	}
	p.Final = true
	p.Cursor = fmt.Sprintf("%s.i.%d", c.st.Epoch, last)
	return p, true
}

func (c *Cloud) events(w http.ResponseWriter, r *http.Request, id string) {
	var req cloudlink.EventsRequest
	if !decode(w, r, &req) {
		return
	}
	resp := cloudlink.EventsResponse{Accepted: make([]string, 0, len(req.Events))}
	c.mu.Lock()
	for _, ev := range req.Events {
		if ev.ID == "" {
			continue
		}
		c.st.EventsReceived++
		if _, dup := c.st.Events[ev.ID]; dup {
			c.st.EventsDuplicates++
			resp.Duplicates++
		} else {
			if ev.Fields == nil {
				ev.Fields = map[string]string{}
			}
			ev.Fields["edge_id"] = id
			c.st.Events[ev.ID] = ev
		}
		resp.Accepted = append(resp.Accepted, ev.ID)
	}
	c.save()
	c.mu.Unlock()
	writeJSON(w, http.StatusOK, resp)
}

func (c *Cloud) heartbeat(w http.ResponseWriter, r *http.Request, id string) {
	var hb cloudlink.Heartbeat
	if !decode(w, r, &hb) {
		return
	}
	c.mu.Lock()
	e := c.st.Edges[id]
	e.LastHeartbeat, e.Status = c.opts.Now(), hb.Status
	c.save()
	c.mu.Unlock()
	_, etag := c.edgeConfig(id)
	writeJSON(w, http.StatusOK, cloudlink.HeartbeatResponse{ServerTime: c.opts.Now().UTC(), ConfigETag: etag})
}
