package console

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// CookieName is the cookie a browser keeps the token in after it opened
// a console URL with ?token=.
const CookieName = "mxedge_console"

// Auth asks every request for the token. A request presents it as
// "Authorization: Bearer TOKEN" (scripts, curl), as the cookie, or once as
// ?token=TOKEN: a page opened that way sets the cookie and redirects to
// the same address without the token, so it stays out of history and logs.
type Auth struct {
	// Token returns the expected token; nil lets every request in (the
	// listener is on loopback).
	Token func() (string, error)
	// Secure marks the cookie Secure: the listener serves HTTPS.
	Secure bool
}

// Required reports whether requests need the token.
func (a Auth) Required() bool { return a.Token != nil }

// check lets r through or answers 401.
func (a Auth) check(w http.ResponseWriter, r *http.Request) bool {
	if a.Token == nil {
		return true
	}
	want, err := a.Token()
	if err != nil || want == "" {
		// Nobody can log in; say so to the operator's log, not the client.
		unauthorized(w)
		return false
	}
	if h := r.Header.Get("Authorization"); h != "" {
		if tok, ok := strings.CutPrefix(h, "Bearer "); ok && equal(tok, want) {
			return true
		}
	}
	if c, err := r.Cookie(CookieName); err == nil && equal(c.Value, want) {
		return true
	}
	q := r.URL.Query()
	if tok := q.Get("token"); tok != "" && equal(tok, want) {
		if api(r) {
			return true
		}
		http.SetCookie(w, &http.Cookie{Name: CookieName, Value: want, Path: Prefix, HttpOnly: true,
			Secure: a.Secure, SameSite: http.SameSiteStrictMode})
		q.Del("token")
		u := url.URL{Path: r.URL.Path, RawQuery: q.Encode()}
		http.Redirect(w, r, u.String(), http.StatusSeeOther)
		return false
	}
	unauthorized(w)
	return false
}

func equal(got, want string) bool {
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

func unauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="mxedge console"`)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusUnauthorized)
	fmt.Fprintln(w, "401 unauthorized: this console needs its token; on the edge, `mxedge console-token` prints it and the address to open.")
}

// TokenFile reads the token from a file, again when the file changes
// (checked at most once a second), so a rotated token needs no restart.
type TokenFile struct {
	Path string
	Now  func() time.Time // nil: time.Now

	mu      sync.Mutex
	tok     string
	mod     time.Time
	checked time.Time
}

// Get returns the token.
func (t *TokenFile) Get() (string, error) {
	now := time.Now
	if t.Now != nil {
		now = t.Now
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	n := now()
	if t.tok != "" && n.Sub(t.checked) < time.Second && n.Sub(t.checked) >= 0 {
		return t.tok, nil
	}
	t.checked = n
	fi, err := os.Stat(t.Path)
	if err != nil {
		return "", err
	}
	if t.tok != "" && fi.ModTime().Equal(t.mod) {
		return t.tok, nil
	}
	tok, err := ReadToken(t.Path)
	if err != nil {
		return "", err
	}
	t.tok, t.mod = tok, fi.ModTime()
	return tok, nil
}

// ReadToken reads a token file.
func ReadToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) < 16 {
		return "", fmt.Errorf("%s: token too short (%d characters)", path, len(tok))
	}
	return tok, nil
}

// EnsureToken returns the token in path, creating the file with a new
// random token (mode 0600) when there is none. Run as root, as the CLI
// may be, it gives a new file to the owner of its directory (the
// daemon's user, which owns state_dir) so the daemon can read it.
func EnsureToken(path string) (tok string, created bool, err error) {
	if tok, err := ReadToken(path); err == nil {
		return tok, false, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", false, err
	}
	var b [32]byte
	rand.Read(b[:])
	tok = hex.EncodeToString(b[:])
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", false, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		// Another process made it first: use theirs.
		tok, err := ReadToken(path)
		return tok, false, err
	}
	if err != nil {
		return "", false, err
	}
	_, werr := f.WriteString(tok + "\n")
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		os.Remove(path)
		return "", false, werr
	}
	if os.Geteuid() == 0 {
		if fi, err := os.Stat(filepath.Dir(path)); err == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				os.Chown(path, int(st.Uid), int(st.Gid))
			}
		}
	}
	return tok, true, nil
}
