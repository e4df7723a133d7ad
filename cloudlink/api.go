package cloudlink

import (
	"errors"
	"fmt"
	"time"

	"github.com/mxedge/mxedge/cache"
)

// APIVersion prefixes every path of the edge API.
const APIVersion = "/v1"

// Paths of the edge API.
const (
	PathRegister  = APIVersion + "/register"
	PathConfig    = APIVersion + "/config"
	PathCache     = APIVersion + "/cache"
	PathEvents    = APIVersion + "/events"
	PathHeartbeat = APIVersion + "/heartbeat"
)

// Error codes of the API's error body.
const (
	CodeBadRequest    = "bad_request"
	CodeInvalidCode   = "invalid_registration_code"
	CodeCodeUsed      = "registration_code_used"
	CodeUnauthorized  = "unauthorized"
	CodeCursorExpired = "cursor_expired"
	CodeNotFound      = "not_found"
	CodeInternal      = "internal"
)

// Error is the body of every non-2xx answer, and the error the Client
// returns for one.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"error"`
	Message string `json:"message"`
}

func (e *Error) Error() string {
	return fmt.Sprintf("cloud API: %s (HTTP %d): %s", e.Code, e.Status, e.Message)
}

// Is makes errors.Is(err, ErrCursorExpired) and friends match by code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && t.Status == 0
}

// Sentinels to test API errors with errors.Is.
var (
	ErrInvalidCode   = &Error{Code: CodeInvalidCode}
	ErrCodeUsed      = &Error{Code: CodeCodeUsed}
	ErrUnauthorized  = &Error{Code: CodeUnauthorized}
	ErrCursorExpired = &Error{Code: CodeCursorExpired}
)

// ErrNotRegistered is returned by LoadRegistration for a state directory
// without a registration.
var ErrNotRegistered = errors.New("cloudlink: edge is not registered (run mxedge register --registration-code CODE)")

// RegisterRequest is POST /v1/register, the only call made without a
// client certificate: the one-time code is the credential.
type RegisterRequest struct {
	Code     string `json:"registration_code"`
	CSR      string `json:"csr"` // PEM CERTIFICATE REQUEST
	Hostname string `json:"hostname,omitempty"`
	Version  string `json:"version,omitempty"`
}

// RegisterResponse is the edge's identity.
type RegisterResponse struct {
	EdgeID        string   `json:"edge_id"`
	OrgID         string   `json:"org_id"`
	SiteID        string   `json:"site_id"`
	Certificate   string   `json:"certificate"` // PEM chain, leaf first
	CABundle      string   `json:"ca_bundle"`   // PEM: trust for the API and the RadSec servers
	RadSecServers []string `json:"radsec_servers"`
	APIURL        string   `json:"api_url"`
}

// EdgeConfig is GET /v1/config: what the cloud says this edge should run.
// Sections that are nil were not set in the cloud.
type EdgeConfig struct {
	Survivability  *Survivability  `json:"survivability,omitempty"`
	RADIUSClients  []RADIUSClient  `json:"radius_clients,omitempty"`
	Federation     []Federation    `json:"federation,omitempty"`
	CachingSiteIDs []string        `json:"caching_site_ids,omitempty"`
	OrgCA          *OrgCA          `json:"org_ca,omitempty"`
	ServerCert     *CertificateKey `json:"server_certificate,omitempty"`
	RadSecServers  []string        `json:"radsec_servers,omitempty"`
	Extra          map[string]any  `json:"extra,omitempty"`
}

// Survivability mirrors the cloud's mist_nacedge object.
type Survivability struct {
	Enabled          bool   `json:"enabled"`
	CacheTTLDays     int    `json:"cache_ttl_days"`
	DefaultMABVLAN   string `json:"default_mab_vlan,omitempty"`
	DefaultDot1XVLAN string `json:"default_dot1x_vlan,omitempty"`
}

// RADIUSClient is one third-party RADIUS client (mist_nac client_ips).
type RADIUSClient struct {
	Name                        string `json:"name"`
	Address                     string `json:"address"` // IP or CIDR
	Secret                      string `json:"secret"`
	Vendor                      string `json:"vendor,omitempty"`
	Site                        string `json:"site_id,omitempty"`
	RequireMessageAuthenticator bool   `json:"require_message_authenticator"`
	CoAPort                     int    `json:"coa_port,omitempty"`
}

// Federation is one roaming federation (eduroam).
type Federation struct {
	Name          string         `json:"name"`
	SSIDs         []string       `json:"ssids,omitempty"`
	ExcludeRealms []string       `json:"exclude_realms,omitempty"`
	OperatorName  string         `json:"operator_name,omitempty"`
	LoadBalance   string         `json:"load_balance,omitempty"`
	AuthServers   []RADIUSServer `json:"auth_servers,omitempty"`
	AcctServers   []RADIUSServer `json:"acct_servers,omitempty"`
}

// RADIUSServer is a plain RADIUS server of a federation.
type RADIUSServer struct {
	Address string `json:"address"`
	Secret  string `json:"secret"`
}

// OrgCA is what validates EAP-TLS client certificates offline.
type OrgCA struct {
	Certificates string   `json:"certificates"` // PEM
	CRLs         []string `json:"crls,omitempty"`
}

// CertificateKey is the server certificate for the edge's local listeners
// (local EAP-TLS, RadSec).
type CertificateKey struct {
	Certificate string `json:"certificate"` // PEM chain, leaf first
	Key         string `json:"key"`         // PEM PKCS#8
}

// CachePage is GET /v1/cache?cursor=…: one page of changes after cursor.
// A page with Full set belongs to a full resync; FullStart marks its first
// page, telling the edge to forget any partial full resync it had.
type CachePage struct {
	Cursor     string      `json:"cursor"`
	Full       bool        `json:"full"`
	FullStart  bool        `json:"full_start,omitempty"`
	Final      bool        `json:"final"`
	Upserts    []Entry     `json:"upserts"`
	Tombstones []Tombstone `json:"tombstones"`
}

// Entry is one cached client as the cloud sends it.
type Entry struct {
	MAC           string        `json:"mac"`
	AuthType      string        `json:"auth_type"` // eap-tls | mab
	Identity      Identity      `json:"identity"`
	Authorization Authorization `json:"authorization"`
	SiteID        string        `json:"site_id,omitempty"`
	LastAuthAt    time.Time     `json:"last_auth_at"`
	ExpiresAt     *time.Time    `json:"expires_at,omitempty"`
}

// Identity is who the client was.
type Identity struct {
	UserName string `json:"user_name,omitempty"`
	CN       string `json:"cn,omitempty"`
	SANEmail string `json:"san_email,omitempty"`
	SANUPN   string `json:"san_upn,omitempty"`
	SANDNS   string `json:"san_dns,omitempty"`
	Serial   string `json:"serial,omitempty"`
	Issuer   string `json:"issuer,omitempty"`
}

// Authorization is what the cloud granted.
type Authorization struct {
	VLAN           string      `json:"vlan,omitempty"`
	Role           string      `json:"role,omitempty"`
	SessionTimeout int         `json:"session_timeout,omitempty"` // seconds
	Attributes     []Attribute `json:"attributes,omitempty"`
}

// Attribute is a RADIUS attribute by dictionary name, or raw.
type Attribute struct {
	Name       string `json:"name,omitempty"`
	Type       uint8  `json:"type,omitempty"`
	VendorID   uint32 `json:"vendor_id,omitempty"`
	VendorType uint8  `json:"vendor_type,omitempty"`
	Value      string `json:"value,omitempty"`
	Raw        []byte `json:"raw,omitempty"` // base64 in JSON
}

// Tombstone removes one entry: MAC alone for MAB, MAC and certificate
// identity for EAP-TLS.
type Tombstone struct {
	MAC      string `json:"mac"`
	Identity string `json:"identity,omitempty"`
}

// Event is one NAC event; ID is its idempotency key.
type Event struct {
	ID       string            `json:"id"`
	Type     string            `json:"type"`
	Time     time.Time         `json:"time"`
	MAC      string            `json:"mac,omitempty"`
	Identity string            `json:"identity,omitempty"`
	Reason   string            `json:"reason,omitempty"`
	Fields   map[string]string `json:"fields,omitempty"`
}

// EventsRequest is POST /v1/events.
type EventsRequest struct {
	Events []Event `json:"events"`
}

// EventsResponse lists the IDs the cloud now holds, new or already known.
// The edge removes exactly those from its outbox.
type EventsResponse struct {
	Accepted   []string `json:"accepted"`
	Duplicates int      `json:"duplicates"`
}

// Heartbeat is POST /v1/heartbeat.
type Heartbeat struct {
	Version      string            `json:"version,omitempty"`
	Time         time.Time         `json:"time"`
	CacheEntries int               `json:"cache_entries"`
	OutboxEvents int               `json:"outbox_events"`
	LastSyncAt   *time.Time        `json:"last_sync_at,omitempty"`
	LastError    string            `json:"last_error,omitempty"`
	Status       map[string]string `json:"status,omitempty"`
}

// HeartbeatResponse tells the edge whether its config is current.
type HeartbeatResponse struct {
	ServerTime time.Time `json:"server_time"`
	ConfigETag string    `json:"config_etag,omitempty"`
}

// CacheEntry converts a wire entry to the store's form.
func (e Entry) CacheEntry() cache.Entry {
	ce := cache.Entry{
		MAC:      e.MAC,
		AuthType: e.AuthType,
		Identity: cache.Identity(e.Identity),
		Authorization: cache.Authorization{
			VLAN:           e.Authorization.VLAN,
			Role:           e.Authorization.Role,
			SessionTimeout: time.Duration(e.Authorization.SessionTimeout) * time.Second,
		},
		Site:       e.SiteID,
		LastAuthAt: e.LastAuthAt,
	}
	if e.ExpiresAt != nil {
		ce.ExpiresAt = *e.ExpiresAt
	}
	for _, a := range e.Authorization.Attributes {
		ce.Authorization.Attributes = append(ce.Authorization.Attributes, cache.Attribute(a))
	}
	return ce
}

// Key returns the store key e replaces or a tombstone for it removes.
func (e Entry) Key() cache.Key { return e.CacheEntry().Key() }

// CacheKey converts a tombstone to the store's key.
func (t Tombstone) CacheKey() cache.Key { return cache.Key{MAC: t.MAC, Identity: t.Identity} }

// EventFrom converts an outbox event to its wire form.
func EventFrom(ev cache.Event) Event { return Event(ev) }
