package peers

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/template"
	"time"

	"github.com/mxedge/mxedge/internal/labpki"
)

// User is a PAP account on the FreeRADIUS peer.
type User struct {
	Password string
	// ReplyMessage and TunnelPassword are returned on accept; the latter
	// is salt-encrypted, so a proxy between secrets must re-encrypt it.
	ReplyMessage   string
	TunnelPassword string
	VLAN           string
}

// FreeRADIUSOptions configures StartFreeRADIUS.
type FreeRADIUSOptions struct {
	// Bin is the server binary; "freeradius" (Debian's name) when empty.
	Bin string
	// Debug adds -xx (full debug log, threads kept: -X would disable them).
	Debug bool

	// PKI supplies the RadSec and EAP server certificates and the org CA.
	// Required when RadSec or EAP-TLS is used.
	PKI *labpki.PKI

	// RadSec enables the RadSec (RFC 6614) listener on 127.0.0.1:RadSecPort
	// (a free port when 0), mutual TLS against PKI.RadSecCAFile, secret
	// "radsec".
	RadSec     bool
	RadSecPort int
	// IdleTimeout closes idle RadSec connections (the listener's and the
	// client's limit.idle_timeout, whole seconds); 0 leaves them open.
	// FreeRADIUS 3.2.1 raises anything below 5 s to 5 s.
	IdleTimeout time.Duration

	// UDP enables plain RADIUS on 127.0.0.1 AuthPort/AcctPort (free ports
	// when 0) for clients 127.0.0.1 and ::1 with Secret.
	UDP      bool
	AuthPort int
	AcctPort int
	Secret   string // "testing123" when empty
	// BindAddress is the UDP listeners' address (127.0.0.1 when empty):
	// another loopback address (127.0.0.2) lets a test tell this server's
	// requests apart from a device's by source. Clients are then accepted
	// from all of 127.0.0.0/8.
	BindAddress string
	// LogAuth writes every Access-Request received into AuthDetail (detail
	// format, read with AuthRecords), so that a test sees what a proxy
	// added (Operator-Name, a Chargeable-User-Identity request).
	LogAuth bool
	// CUI answers an Access-Request carrying a Chargeable-User-Identity
	// request with CUI + "-" + User-Name in the Accept (RFC 4372).
	CUI string
	// RequireMessageAuthenticator makes FreeRADIUS discard UDP
	// Access-Requests without one (the client option, present in 3.2.1).
	RequireMessageAuthenticator bool

	// MAB maps a MAC (any common notation) to the VLAN returned on
	// accept; "" accepts without VLAN attributes. Other MACs are rejected.
	MAB map[string]string
	// Users are PAP accounts.
	Users map[string]User
	// EAPVLAN maps a client certificate CN to a VLAN for EAP-TLS accepts.
	EAPVLAN map[string]string
	// EAPServerRSA selects the RSA-2048 EAP server certificate instead of
	// the ECDSA P-256 one.
	EAPServerRSA bool
	// EAPTLSMaxVersion is the EAP tls_max_version ("1.3" when empty).
	EAPTLSMaxVersion string
}

// FreeRADIUS is a running FreeRADIUS peer.
type FreeRADIUS struct {
	Dir    string // config and state directory
	Logs   string // server output (appended across restarts)
	Detail string // accounting detail file
	// AuthDetail holds the Access-Requests received when LogAuth is set.
	AuthDetail string
	AuthPort   int    // 0 unless UDP
	AcctPort   int    // 0 unless UDP
	Secret     string // UDP client secret
	// RadSecAddr is the RadSec listener's host:port ("" unless RadSec).
	RadSecAddr string

	bind string
	bin  string
	args []string

	run running
}

// StartFreeRADIUS writes a config into dir and starts FreeRADIUS, returning
// once it logged "Ready to process requests" (bounded by ctx).
func StartFreeRADIUS(ctx context.Context, dir string, opts FreeRADIUSOptions) (*FreeRADIUS, error) {
	bin, err := lookBinOr(opts.Bin, "freeradius")
	if err != nil {
		return nil, err
	}
	if (opts.RadSec || len(opts.EAPVLAN) > 0) && opts.PKI == nil {
		return nil, errors.New("peers: FreeRADIUS RadSec/EAP-TLS needs a PKI")
	}
	if !opts.RadSec && !opts.UDP {
		return nil, errors.New("peers: FreeRADIUS needs RadSec or UDP")
	}
	if opts.Secret == "" {
		opts.Secret = "testing123"
	}
	if opts.BindAddress == "" {
		opts.BindAddress = "127.0.0.1"
	}
	if opts.EAPTLSMaxVersion == "" {
		opts.EAPTLSMaxVersion = "1.3"
	}
	if opts.UDP && (opts.AuthPort == 0 || opts.AcctPort == 0) {
		ps, err := freePorts("udp", 2)
		if err != nil {
			return nil, err
		}
		if opts.AuthPort == 0 {
			opts.AuthPort = ps[0]
		}
		if opts.AcctPort == 0 {
			opts.AcctPort = ps[1]
			if opts.AcctPort == opts.AuthPort { // AuthPort was given and clashes
				opts.AcctPort = ps[0]
			}
		}
	}
	if opts.RadSec && opts.RadSecPort == 0 {
		if opts.RadSecPort, err = FreePort("tcp"); err != nil {
			return nil, err
		}
	}
	for _, sub := range []string{"run", "acct", "mods-config"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return nil, err
		}
	}
	f := &FreeRADIUS{
		Dir:    dir,
		Logs:   filepath.Join(dir, "freeradius.log"),
		Detail: filepath.Join(dir, "acct", "detail"),
		Secret: opts.Secret,
		// Outside acct/: CountAccountingRecords reads the detail file only.
		AuthDetail: filepath.Join(dir, "auth-detail"),
		bin:        bin,
		bind:       opts.BindAddress,
		run:        running{name: "FreeRADIUS"},
	}
	if opts.UDP {
		f.AuthPort, f.AcctPort = opts.AuthPort, opts.AcctPort
	}
	if opts.RadSec {
		f.RadSecAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(opts.RadSecPort))
	}
	if err := writeFreeRADIUSConfig(dir, opts); err != nil {
		return nil, err
	}
	f.args = []string{"-f", "-l", "stdout", "-d", dir}
	if opts.Debug {
		// -X would also make it single-threaded, which TLS listeners refuse.
		f.args = []string{"-f", "-xx", "-l", "stdout", "-d", dir}
	}
	if err := f.start(ctx); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *FreeRADIUS) start(ctx context.Context) error {
	p, err := startProcess(f.bin, f.args, f.Dir, f.Logs, "Ready to process requests")
	if err != nil {
		return err
	}
	if err := p.waitReady(ctx, f.Logs); err != nil {
		p.stop()
		return err
	}
	f.run.set(p)
	return nil
}

// PID is the server's process id (0 when stopped).
func (f *FreeRADIUS) PID() int { return f.run.pid() }

// AuthAddr is the UDP auth listener's host:port.
func (f *FreeRADIUS) AuthAddr() string {
	return net.JoinHostPort(f.bind, strconv.Itoa(f.AuthPort))
}

// AcctAddr is the UDP accounting listener's host:port.
func (f *FreeRADIUS) AcctAddr() string {
	return net.JoinHostPort(f.bind, strconv.Itoa(f.AcctPort))
}

// Stop terminates the server (SIGTERM, then SIGKILL) and waits for it.
func (f *FreeRADIUS) Stop() { f.run.stop() }

// Restart stops the server and starts it again on the same ports.
func (f *FreeRADIUS) Restart(ctx context.Context) error {
	f.Stop()
	return f.start(ctx)
}

// Pause freezes the server (SIGSTOP): sockets stay open, nothing answers.
func (f *FreeRADIUS) Pause() error { return f.run.signal(syscall.SIGSTOP) }

// Resume continues a paused server (SIGCONT).
func (f *FreeRADIUS) Resume() error { return f.run.signal(syscall.SIGCONT) }

// NormalizeMAC returns the 12-lowercase-hex form of a MAC in colon, dash,
// dot or bare notation, or "" when it isn't one.
func NormalizeMAC(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= '0' && r <= '9', r >= 'a' && r <= 'f':
			b.WriteRune(r)
		case r == ':', r == '-', r == '.':
		default:
			return ""
		}
	}
	if b.Len() != 12 {
		return ""
	}
	return b.String()
}

type frTemplateData struct {
	FreeRADIUSOptions
	Dir         string
	Idle        int
	EAPCert     *labpki.Cert
	Users       []frUser
	EAPVLANs    []frKV
	MaxRequests int
}

type frUser struct {
	Name, Password, ReplyMessage, TunnelPassword, VLAN string
	CallCheck                                          bool
}

type frKV struct{ Key, Value string }

func writeFreeRADIUSConfig(dir string, opts FreeRADIUSOptions) error {
	d := frTemplateData{FreeRADIUSOptions: opts, Dir: dir}
	if opts.IdleTimeout > 0 {
		d.Idle = int((opts.IdleTimeout + time.Second - 1) / time.Second)
	}
	if opts.PKI != nil {
		d.EAPCert = opts.PKI.EAPServerECDSA
		if opts.EAPServerRSA {
			d.EAPCert = opts.PKI.EAPServerRSA
		}
	}
	for mac, vlan := range opts.MAB {
		m := NormalizeMAC(mac)
		if m == "" {
			return fmt.Errorf("peers: MAB %q is not a MAC", mac)
		}
		// Call-Check first: a switch doing MAB is trusted for the MAC alone;
		// the PAP entry covers User-Password = MAC without Call-Check.
		d.Users = append(d.Users, frUser{Name: m, VLAN: vlan, CallCheck: true}, frUser{Name: m, Password: m, VLAN: vlan})
	}
	for name, u := range opts.Users {
		d.Users = append(d.Users, frUser{Name: name, Password: u.Password, ReplyMessage: u.ReplyMessage, TunnelPassword: u.TunnelPassword, VLAN: u.VLAN})
	}
	sort.SliceStable(d.Users, func(i, j int) bool { return d.Users[i].Name < d.Users[j].Name })
	for cn, vlan := range opts.EAPVLAN {
		d.EAPVLANs = append(d.EAPVLANs, frKV{cn, vlan})
	}
	sort.Slice(d.EAPVLANs, func(i, j int) bool { return d.EAPVLANs[i].Key < d.EAPVLANs[j].Key })

	files := map[string]*template.Template{
		"radiusd.conf": radiusdConf,
		"users":        usersFile,
	}
	for name, t := range files {
		var b strings.Builder
		if err := t.Execute(&b, d); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(b.String()), 0o600); err != nil {
			return err
		}
	}
	// FreeRADIUS reads ${confdir}/dictionary after the shipped ones.
	return os.WriteFile(filepath.Join(dir, "dictionary"), nil, 0o600)
}

// quote renders s as a FreeRADIUS double-quoted string.
func quote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(s) + `"`
}

var funcs = template.FuncMap{"q": quote}

var usersFile = template.Must(template.New("users").Funcs(funcs).Parse(`# written by mxedge peers
{{range .Users}}
{{- if .CallCheck}}{{q .Name}}	Service-Type == Call-Check, Auth-Type := Accept
{{- else}}{{q .Name}}	Cleartext-Password := {{q .Password}}
{{- end}}
{{- if .ReplyMessage}}
	Reply-Message = {{q .ReplyMessage}},{{end}}
{{- if .TunnelPassword}}
	Tunnel-Password = {{q .TunnelPassword}},{{end}}
{{- if .VLAN}}
	Tunnel-Type = VLAN,
	Tunnel-Medium-Type = IEEE-802,
	Tunnel-Private-Group-Id = {{q .VLAN}},{{end}}
	Fall-Through = no

{{end}}`))

// radiusdConf is a minimal, self-contained server: no Debian include tree,
// so a distribution update can't change what the tests exercise.
var radiusdConf = template.Must(template.New("radiusd.conf").Funcs(funcs).Parse(`# written by mxedge peers
prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = /var
sbindir = /usr/sbin
logdir = {{.Dir}}
raddbdir = {{.Dir}}
radacctdir = {{.Dir}}/acct
name = freeradius
confdir = {{.Dir}}
modconfdir = {{.Dir}}/mods-config
certdir = {{.Dir}}
cadir = {{.Dir}}
run_dir = {{.Dir}}/run
db_dir = {{.Dir}}
libdir = /usr/lib/freeradius
pidfile = {{.Dir}}/run/freeradius.pid
max_request_time = 30
cleanup_delay = 5
max_requests = 16384
hostname_lookups = no

log {
	destination = stdout
	colourise = no
	file = {{.Dir}}/radius.log
	stripped_names = no
	auth = yes
	auth_badpass = no
	auth_goodpass = no
}

security {
	allow_core_dumps = no
	max_attributes = 200
	reject_delay = 0
	status_server = yes
}

proxy_requests = no

thread pool {
	start_servers = 4
	max_servers = 16
	min_spare_servers = 2
	max_spare_servers = 8
	max_requests_per_server = 0
	auto_limit_acct = no
}
{{if .UDP}}
client lo4 {
	ipaddr = {{if eq .BindAddress "127.0.0.1"}}127.0.0.1{{else}}127.0.0.0/8{{end}}
	proto = udp
	secret = {{q .Secret}}
	require_message_authenticator = {{if .RequireMessageAuthenticator}}yes{{else}}no{{end}}
}
client lo6 {
	ipaddr = ::1
	proto = udp
	secret = {{q .Secret}}
	require_message_authenticator = {{if .RequireMessageAuthenticator}}yes{{else}}no{{end}}
}

listen {
	type = auth
	ipaddr = {{.BindAddress}}
	port = {{.AuthPort}}
	virtual_server = default
}

listen {
	type = acct
	ipaddr = {{.BindAddress}}
	port = {{.AcctPort}}
	virtual_server = default
}
{{end}}
{{- if .RadSec}}
clients radsec {
	client lo4 {
		ipaddr = 127.0.0.1
		proto = tls
		secret = radsec
		limit {
			max_connections = 64
			lifetime = 0
			idle_timeout = {{.Idle}}
		}
	}
	client lo6 {
		ipaddr = ::1
		proto = tls
		secret = radsec
		limit {
			max_connections = 64
			lifetime = 0
			idle_timeout = {{.Idle}}
		}
	}
}

listen {
	type = auth+acct
	proto = tcp
	ipaddr = 127.0.0.1
	port = {{.RadSecPort}}
	virtual_server = default
	clients = radsec
	limit {
		max_connections = 64
		lifetime = 0
		idle_timeout = {{.Idle}}
	}
	tls {
		private_key_file = {{.PKI.RadSecServer.Key}}
		certificate_file = {{.PKI.RadSecServer.Chain}}
		ca_file = {{.PKI.RadSecCAFile}}
		fragment_size = 8192
		cipher_list = "DEFAULT"
		cipher_server_preference = no
		tls_min_version = "1.2"
		tls_max_version = "1.3"
		require_client_cert = yes
		cache {
			enable = no
		}
		verify {
		}
	}
}
{{end}}
modules {
	always ok {
		rcode = ok
	}
	pap {
		normalise = yes
	}
	files {
		filename = {{.Dir}}/users
		acctusersfile = {{.Dir}}/users
		preproxy_usersfile = {{.Dir}}/users
	}
	detail {
		filename = {{.Dir}}/acct/detail
		escape_filenames = no
		permissions = 0600
		header = "%t"
		locking = no
	}
{{- if .LogAuth}}
	detail auth_log {
		filename = {{.Dir}}/auth-detail
		escape_filenames = no
		permissions = 0600
		header = "%t"
		locking = no
	}
{{- end}}
{{- if .EAPCert}}
	eap {
		default_eap_type = tls
		timer_expire = 60
		ignore_unknown_eap_types = no
		cisco_accounting_username_bug = no
		max_sessions = 4096
		tls-config tls-common {
			private_key_file = {{.EAPCert.Key}}
			certificate_file = {{.EAPCert.Chain}}
			ca_file = {{.PKI.OrgCAWithCRLFile}}
			check_crl = yes
			cipher_list = "DEFAULT"
			cipher_server_preference = no
			tls_min_version = "1.2"
			tls_max_version = {{q .EAPTLSMaxVersion}}
			ecdh_curve = ""
			fragment_size = 1024
			include_length = yes
			cache {
				enable = no
			}
			verify {
			}
			ocsp {
				enable = no
			}
		}
		tls {
			tls = tls-common
		}
	}
{{- end}}
}

server default {
	authorize {
{{- if .LogAuth}}
		auth_log
{{- end}}
{{- if .EAPCert}}
		eap {
			ok = return
		}
{{- end}}
		files
		pap
	}
	authenticate {
		Auth-Type PAP {
			pap
		}
{{- if .EAPCert}}
		eap
{{- end}}
	}
	preacct {
	}
	accounting {
		detail
		ok
	}
	post-auth {
{{- if .CUI}}
		if (&Chargeable-User-Identity) {
			update reply {
				&Chargeable-User-Identity := "{{.CUI}}-%{User-Name}"
			}
		}
{{- end}}
{{- range .EAPVLANs}}
		if (&TLS-Client-Cert-Common-Name == {{q .Key}}) {
			update reply {
				&Tunnel-Type := VLAN
				&Tunnel-Medium-Type := IEEE-802
				&Tunnel-Private-Group-Id := {{q .Value}}
			}
		}
{{- end}}
		Post-Auth-Type REJECT {
			# Reply items the users file queued (Tunnel-Password…) must not
			# leak into a reject.
			update {
				&reply: !* ANY
			}
{{- if .EAPCert}}
			eap
{{- end}}
			ok
		}
	}
}
`))
