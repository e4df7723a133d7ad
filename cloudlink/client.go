package cloudlink

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Default limits of a Client.
const (
	DefaultTimeout = 30 * time.Second
	maxBody        = 64 << 20 // a 100k-entry sync page is ~30 MB of JSON
)

// ClientOptions configure a Client. The zero value reaches a cloud with a
// publicly trusted certificate, without a client certificate, through
// HTTPS_PROXY if the environment names one.
type ClientOptions struct {
	// RootCAs verify the API server; nil means the system roots.
	RootCAs *x509.CertPool
	// Certificate is the registration certificate for mutual TLS.
	Certificate *tls.Certificate
	// ProxyURL is cloud.proxy_url; "" falls back to HTTPS_PROXY/NO_PROXY
	// (http.ProxyFromEnvironment).
	ProxyURL string
	// Proxy overrides both, for tests.
	Proxy func(*http.Request) (*url.URL, error)
	// Timeout bounds each API call, body included; default 30 s.
	Timeout   time.Duration
	UserAgent string
}

// Client calls the edge API. It is safe for concurrent use.
type Client struct {
	base *url.URL
	http *http.Client
	ua   string
}

// NewClient returns a Client for the API at apiURL (https://host[:port]).
func NewClient(apiURL string, opts ClientOptions) (*Client, error) {
	u, err := url.Parse(apiURL)
	if err != nil {
		return nil, fmt.Errorf("cloudlink: api url: %w", err)
	}
	if u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("cloudlink: api url %q: want https://host[:port]", apiURL)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	proxy := opts.Proxy
	if proxy == nil {
		proxy = http.ProxyFromEnvironment
		if opts.ProxyURL != "" {
			pu, err := url.Parse(opts.ProxyURL)
			if err != nil || pu.Host == "" {
				return nil, fmt.Errorf("cloudlink: proxy url %q: not a URL", opts.ProxyURL)
			}
			proxy = http.ProxyURL(pu)
		}
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	tc := &tls.Config{RootCAs: opts.RootCAs, MinVersion: tls.VersionTLS12}
	if opts.Certificate != nil {
		tc.Certificates = []tls.Certificate{*opts.Certificate}
	}
	tr := &http.Transport{
		Proxy:                 proxy,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tc,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: opts.Timeout,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   2,
		ForceAttemptHTTP2:     true,
	}
	ua := opts.UserAgent
	if ua == "" {
		ua = "mxedge-cloudlink"
	}
	return &Client{base: u, http: &http.Client{Transport: tr, Timeout: opts.Timeout}, ua: ua}, nil
}

// URL returns the API base URL.
func (c *Client) URL() string { return c.base.String() }

// CloseIdleConnections releases pooled connections.
func (c *Client) CloseIdleConnections() { c.http.CloseIdleConnections() }

// Register exchanges a registration code and CSR for an identity.
func (c *Client) Register(ctx context.Context, req RegisterRequest) (*RegisterResponse, error) {
	var out RegisterResponse
	if _, err := c.do(ctx, http.MethodPost, PathRegister, nil, nil, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Config fetches the edge config. With etag set and the config unchanged
// it returns (nil, etag, nil).
func (c *Client) Config(ctx context.Context, etag string) (*EdgeConfig, string, error) {
	h := http.Header{}
	if etag != "" {
		h.Set("If-None-Match", etag)
	}
	var out EdgeConfig
	resp, err := c.do(ctx, http.MethodGet, PathConfig, nil, h, nil, &out)
	if err != nil {
		return nil, "", err
	}
	if resp.StatusCode == http.StatusNotModified {
		return nil, etag, nil
	}
	return &out, resp.Header.Get("ETag"), nil
}

// CachePage fetches the page of changes after cursor ("" starts a full
// resync). An unknown or expired cursor is ErrCursorExpired.
func (c *Client) CachePage(ctx context.Context, cursor string, limit int, sites []string) (*CachePage, error) {
	q := url.Values{}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if len(sites) > 0 {
		q.Set("site_ids", strings.Join(sites, ","))
	}
	var out CachePage
	if _, err := c.do(ctx, http.MethodGet, PathCache, q, nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// UploadEvents posts a batch; the answer lists the IDs the cloud holds.
func (c *Client) UploadEvents(ctx context.Context, evs []Event) (*EventsResponse, error) {
	var out EventsResponse
	if _, err := c.do(ctx, http.MethodPost, PathEvents, nil, nil, EventsRequest{Events: evs}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Heartbeat reports status; the answer carries the current config ETag.
func (c *Client) Heartbeat(ctx context.Context, hb Heartbeat) (*HeartbeatResponse, error) {
	var out HeartbeatResponse
	if _, err := c.do(ctx, http.MethodPost, PathHeartbeat, nil, nil, hb, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func (c *Client) do(ctx context.Context, method, path string, q url.Values, h http.Header, in, out any) (*http.Response, error) {
	u := *c.base
	u.Path += path
	u.RawQuery = q.Encode()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, err
	}
	for k, v := range h {
		req.Header[k] = v
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.ua)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cloud API %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	r := io.LimitReader(resp.Body, maxBody)
	switch {
	case resp.StatusCode == http.StatusNotModified:
		return resp, nil
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		if out == nil {
			_, _ = io.Copy(io.Discard, r)
			return resp, nil
		}
		if err := json.NewDecoder(r).Decode(out); err != nil {
			return nil, fmt.Errorf("cloud API %s %s: bad response body: %w", method, path, err)
		}
		return resp, nil
	default:
		b, _ := io.ReadAll(io.LimitReader(r, 64<<10))
		e := &Error{Status: resp.StatusCode}
		if json.Unmarshal(b, e) != nil || e.Code == "" {
			e.Code = CodeInternal
			e.Message = strings.TrimSpace(string(b))
			if e.Message == "" {
				e.Message = http.StatusText(resp.StatusCode)
			}
		}
		return nil, e
	}
}

// IsPermanent reports whether retrying err cannot help without operator
// action (a refused identity, for one), as opposed to an outage.
func IsPermanent(err error) bool {
	var e *Error
	return errors.As(err, &e) && (e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden)
}
