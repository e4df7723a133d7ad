package console

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mxedge/mxedge/cache"
)

// Prefix is where the console lives on the metrics listener.
const Prefix = "/console/"

// Limits of the decisions list.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// ErrNoCache is what a Source answers when no client cache is open.
var ErrNoCache = errors.New("no client cache is open (survivability is off, or mode is cloud)")

//go:embed assets
var assets embed.FS

// Config configures a Handler.
type Config struct {
	Source   Source
	Recorder *Recorder
	// Gatherer is the daemon's metrics registry, read for the Devices
	// page's counts and rates.
	Gatherer prometheus.Gatherer
	// Auth guards every page and endpoint; the zero value lets all in
	// (loopback).
	Auth   Auth
	Logger *slog.Logger
	Now    func() time.Time
}

// Handler serves the console under Prefix.
type Handler struct {
	cfg   Config
	tmpl  *template.Template
	mux   *http.ServeMux
	rates rates
	bufs  sync.Pool
}

// New builds the console's handler.
func New(cfg Config) (*Handler, error) {
	if cfg.Source == nil || cfg.Recorder == nil {
		return nil, errors.New("console: Source and Recorder are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	h := &Handler{cfg: cfg, bufs: sync.Pool{New: func() any { return new(bytes.Buffer) }}}
	var err error
	h.tmpl, err = template.New("").Funcs(funcs).ParseFS(assets, "assets/*.html")
	if err != nil {
		return nil, err
	}
	css, _ := assets.ReadFile("assets/console.css")
	js, _ := assets.ReadFile("assets/live.js")
	m := http.NewServeMux()
	m.HandleFunc("GET "+Prefix+"{$}", h.now)
	m.HandleFunc("GET "+Prefix+"decisions", h.decisions)
	m.HandleFunc("GET "+Prefix+"client", h.client)
	m.HandleFunc("GET "+Prefix+"devices", h.devices)
	m.HandleFunc("GET "+Prefix+"api/now", h.now)
	m.HandleFunc("GET "+Prefix+"api/decisions", h.decisions)
	m.HandleFunc("GET "+Prefix+"api/client", h.client)
	m.HandleFunc("GET "+Prefix+"api/devices", h.devices)
	m.Handle("GET "+Prefix+"console.css", static("text/css; charset=utf-8", css))
	m.Handle("GET "+Prefix+"live.js", static("text/javascript; charset=utf-8", js))
	h.mux = m
	return h, nil
}

// ServeHTTP checks the token, then serves the page or endpoint. Every
// response forbids framing and any script or style not from the console.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; script-src 'self'; connect-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Cache-Control", "no-store")
	if !h.cfg.Auth.check(w, r) {
		return
	}
	h.mux.ServeHTTP(w, r)
}

func static(ctype string, b []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", ctype)
		w.Write(b)
	})
}

// page is what every template gets.
type page struct {
	Title string
	Nav   string // the current page, for aria-current
	Now   time.Time
	Data  any
}

// api reports whether r asks for the JSON endpoint.
func api(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, Prefix+"api/") }

// render writes data as JSON for an API request, else through the named
// template. Rendering goes to a buffer first, so a template error is a 500
// rather than half a page.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, name, title string, now time.Time, data any) {
	buf := h.bufs.Get().(*bytes.Buffer)
	buf.Reset()
	defer h.bufs.Put(buf)
	var err error
	if api(r) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(buf)
		enc.SetIndent("", " ")
		err = enc.Encode(data)
	} else {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		err = h.tmpl.ExecuteTemplate(buf, name, page{Title: title, Nav: name, Now: now, Data: data})
	}
	if err != nil {
		h.cfg.Logger.Error("console page failed", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Write(buf.Bytes())
}

func ageS(now, t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return now.Sub(t).Round(time.Second).Seconds()
}

func (h *Handler) now(w http.ResponseWriter, r *http.Request) {
	now := h.cfg.Now()
	n := h.cfg.Source.Now()
	n.Time = now
	n.SinceAgeS = ageS(now, n.Since)
	n.LastSyncAgeS = ageS(now, n.LastSync)
	if c := n.Cache; c != nil {
		c.OutboxOldestAge = ageS(now, c.OutboxOldest)
		c.AccountingOldestAge = ageS(now, c.AccountingOldest)
	}
	if n.Servers == nil {
		n.Servers = []Server{}
	}
	n.Decisions = h.cfg.Recorder.Len()
	h.render(w, r, "now", "Now", now, n)
}

// FormatMAC writes a MAC the way the console shows and filters it,
// aa:bb:cc:dd:ee:ff, whatever separators it came with; anything that is
// not a MAC comes back as it is.
func FormatMAC(s string) string {
	n, ok := cache.NormalizeMAC(s)
	if !ok {
		return s
	}
	var b [17]byte
	for i, j := 0, 0; i < 12; i += 2 {
		if i > 0 {
			b[j] = ':'
			j++
		}
		b[j], b[j+1] = n[i], n[i+1]
		j += 2
	}
	return string(b[:])
}

// queryMAC reads a MAC from the query: "" when absent, an error when not a
// MAC, else the MAC as FormatMAC writes it and as the cache keys it.
func queryMAC(r *http.Request) (shown, key string, err error) {
	v := strings.TrimSpace(r.URL.Query().Get("mac"))
	if v == "" {
		return "", "", nil
	}
	key, ok := cache.NormalizeMAC(v)
	if !ok {
		return v, "", errors.New(strconv.Quote(v) + " is not a MAC address")
	}
	return FormatMAC(key), key, nil
}

func (h *Handler) decisions(w http.ResponseWriter, r *http.Request) {
	now := h.cfg.Now()
	q := r.URL.Query()
	p := DecisionsPage{Time: now, Identity: strings.TrimSpace(q.Get("identity")), Limit: DefaultLimit}
	status := http.StatusOK
	mac, _, err := queryMAC(r)
	p.MAC = mac
	if err != nil {
		p.Error, status = err.Error(), http.StatusBadRequest
	}
	if v := q.Get("limit"); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			p.Limit = min(n, MaxLimit)
		}
	}
	var after uint64
	if v := q.Get("after"); v != "" {
		after, _ = strconv.ParseUint(v, 10, 64)
	}
	p.Last = h.cfg.Recorder.Last()
	p.Decisions = []Decision{}
	if p.Error == "" {
		p.Decisions = h.cfg.Recorder.Recent(Filter{MAC: p.MAC, Identity: p.Identity, After: after}, p.Limit)
	}
	if status != http.StatusOK {
		w.WriteHeader(status)
	}
	h.render(w, r, "decisions", "Decisions", now, p)
}

func (h *Handler) client(w http.ResponseWriter, r *http.Request) {
	now := h.cfg.Now()
	p := ClientPage{Time: now, Entries: []Entry{}, Decisions: []Decision{}}
	mac, key, err := queryMAC(r)
	p.MAC = mac
	switch {
	case err != nil:
		p.Error = err.Error()
		w.WriteHeader(http.StatusBadRequest)
	case mac != "":
		entries, err := h.cfg.Source.Entries(key)
		if err != nil {
			p.Error = err.Error()
		} else if entries != nil {
			p.Entries = entries
		}
		for i := range p.Entries {
			p.Entries[i].MAC = FormatMAC(p.Entries[i].MAC)
		}
		p.Decisions = h.cfg.Recorder.Recent(Filter{MAC: mac}, DefaultLimit)
	}
	h.render(w, r, "client", "Client", now, p)
}

func (h *Handler) devices(w http.ResponseWriter, r *http.Request) {
	now := h.cfg.Now()
	d := h.cfg.Source.Devices()
	d.Time = now
	if d.Clients == nil {
		d.Clients = []RADIUSClient{}
	}
	if d.Upstreams == nil {
		d.Upstreams = []Upstream{}
	}
	h.fillDevices(&d, now)
	if d.Drops == nil {
		d.Drops = []Count{}
	}
	h.render(w, r, "devices", "Devices", now, d)
}

var funcs = template.FuncMap{
	// ago says how long before now t was, in words a phone fits.
	"ago": func(now, t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		d := now.Sub(t)
		switch {
		case d < 0:
			return "just now"
		case d < time.Minute:
			return strconv.Itoa(int(d.Seconds())) + " s ago"
		case d < time.Hour:
			return strconv.Itoa(int(d.Minutes())) + " min ago"
		case d < 48*time.Hour:
			return strconv.FormatFloat(d.Hours(), 'f', 1, 64) + " h ago"
		}
		return strconv.Itoa(int(d.Hours()/24)) + " days ago"
	},
	"stamp": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"iso":  func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"num":  func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) },
	"rate": func(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) },
	"ms":   func(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) },
	"rows": decisionRows,
	"list": func() []int { return []int{25, DefaultLimit, 250, MaxLimit} },
	"table": func(id, caption string, rows []Decision) decisionTable {
		return decisionTable{ID: id, Caption: caption, Rows: rows}
	},
}

// decisionTable is the decisions table as the Decisions and Client pages
// share it.
type decisionTable struct {
	ID, Caption string
	Rows        []Decision
}
