package edge

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mxedge/mxedge/edge/config"
	"github.com/mxedge/mxedge/edge/console"
)

// newLogger builds the daemon's logger from the log section.
func newLogger(w io.Writer, c config.Log) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.Level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	opts.ReplaceAttr = readableValue
	return slog.New(slog.NewTextHandler(w, opts))
}

// readableValue renders lists and maps in text logs as JSON, which an
// operator reads and jq parses, instead of Go's map[k:v] and [a b]
// (which the JSON handler never prints anyway).
func readableValue(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() != slog.KindAny {
		return a
	}
	v := a.Value.Any()
	switch v.(type) {
	case error, fmt.Stringer, slog.LogValuer:
		return a // they say how they read: a list of config errors is one message
	}
	switch reflect.ValueOf(v).Kind() {
	case reflect.Map, reflect.Slice, reflect.Array:
		if _, ok := v.([]byte); ok {
			return a
		}
		if b, err := json.Marshal(v); err == nil {
			return slog.String(a.Key, string(b))
		}
	}
	return a
}

// newRegistry returns a fresh registry with the process and Go collectors,
// never the global one, so tests and reloads don't collide.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewGoCollector())
	return reg
}

// healthzFunc is what /healthz reports.
type healthzFunc func() (ok bool, detail map[string]any)

// startObservability serves /metrics, /healthz and the web console on ln
// until ctx ends: over TLS with metrics.https, the console guarded by its
// token off loopback. It also hooks the console's recorder onto the
// router's cloud answers, so it must run before the RADIUS listeners.
func (a *App) startObservability(ctx context.Context, ln net.Listener, cfg *config.Config) error {
	secure := cfg.Metrics.HTTPS
	if secure {
		tc, err := a.metricsTLS(cfg)
		if err != nil {
			return fmt.Errorf("metrics.https: %w", err)
		}
		ln = tls.NewListener(ln, tc)
	}
	con, err := a.consoleHandler(cfg, secure)
	if err != nil {
		return fmt.Errorf("metrics.console: %w", err)
	}
	if con != nil {
		a.router.learn = a.console.chainLearn(a.router.learn)
	}
	go serveObservability(ctx, ln, a.reg, a.healthz, con, a.log)
	return nil
}

// serveObservability runs /metrics and /healthz, and the console when con
// is not nil, on ln until ctx ends.
func serveObservability(ctx context.Context, ln net.Listener, reg *prometheus.Registry, h healthzFunc, con http.Handler, log *slog.Logger) error {
	mux := http.NewServeMux()
	if con != nil {
		mux.Handle(console.Prefix, con)
		mux.Handle("GET /{$}", http.RedirectHandler(console.Prefix, http.StatusFound))
	}
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		ok, detail := h()
		w.Header().Set("Content-Type", "application/json")
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		json.NewEncoder(w).Encode(detail)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("metrics listener stopped", "err", err)
		return err
	}
	return nil
}
