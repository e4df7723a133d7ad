package labcloud

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/mxedge/mxedge/cloudlink"
)

const stateFile = "state.json"

// state is everything the lab cloud remembers, saved whole after each
// change. Lab scale only.
type state struct {
	Epoch   string                     `json:"epoch"` // cursors carry it; a new epoch forgets them all
	Seq     uint64                     `json:"seq"`
	Codes   map[string]*code           `json:"codes"`
	Edges   map[string]*edge           `json:"edges"`
	Records map[string]*record         `json:"records"` // cache, by entry key
	Events  map[string]cloudlink.Event `json:"events"`  // by idempotency key
	Auths   []authLog                  `json:"auths"`

	EventsReceived   int `json:"events_received"`
	EventsDuplicates int `json:"events_duplicates"`
	Accounting       int `json:"accounting"`
}

type code struct {
	Created time.Time `json:"created"`
	EdgeID  string    `json:"edge_id,omitempty"` // set once used
}

type edge struct {
	ID            string            `json:"id"`
	Code          string            `json:"code"`
	PublicKey     string            `json:"public_key"` // SHA-256 of the SPKI, hex
	Hostname      string            `json:"hostname,omitempty"`
	RegisteredAt  time.Time         `json:"registered_at"`
	LastHeartbeat time.Time         `json:"last_heartbeat,omitzero"`
	Status        map[string]string `json:"status,omitempty"`
	ServerCert    string            `json:"server_cert"`
	ServerKey     string            `json:"server_key"`
	Cluster       string            `json:"cluster,omitempty"`
}

// record is one cache entry's latest state; Entry nil is a tombstone.
type record struct {
	Seq   uint64           `json:"seq"`
	Entry *cloudlink.Entry `json:"entry,omitempty"`
	MAC   string           `json:"mac"`
	ID    string           `json:"identity,omitempty"`
}

type authLog struct {
	Time   time.Time `json:"time"`
	Edge   string    `json:"edge"`
	MAC    string    `json:"mac"`
	Result string    `json:"result"`
	VLAN   string    `json:"vlan,omitempty"`
	// Method and Identity are set for EAP-TLS ("" is MAB).
	Method   string `json:"method,omitempty"`
	Identity string `json:"identity,omitempty"`
}

const maxAuthLog = 10000

func loadState(dir string) (*state, error) {
	st := &state{}
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, err
	default:
		if err := json.Unmarshal(b, st); err != nil {
			return nil, err
		}
	}
	if st.Codes == nil {
		st.Codes = map[string]*code{}
	}
	if st.Edges == nil {
		st.Edges = map[string]*edge{}
	}
	if st.Records == nil {
		st.Records = map[string]*record{}
	}
	if st.Events == nil {
		st.Events = map[string]cloudlink.Event{}
	}
	return st, nil
}

func (st *state) save(dir string) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, stateFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, stateFile))
}
