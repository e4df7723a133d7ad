package eaptls

import (
	"crypto/tls"
	"fmt"
)

// Exporter labels (RFC 5216 §2.3, RFC 9190 §2.3).
const (
	labelTLS12 = "client EAP encryption"
	labelTLS13 = "EXPORTER_EAP_TLS_Key_Material"
)

// Keys is the EAP-TLS key material: MSK and EMSK, 64 bytes each.
type Keys struct {
	MSK  []byte
	EMSK []byte
}

// MPPERecvKey is MS-MPPE-Recv-Key (RFC 5216 §2.3: MSK[0:32]).
func (k Keys) MPPERecvKey() []byte { return k.MSK[:32] }

// MPPESendKey is MS-MPPE-Send-Key (MSK[32:64]).
func (k Keys) MPPESendKey() []byte { return k.MSK[32:64] }

// ExportKeys derives MSK and EMSK from a finished handshake. It is exported
// so a peer (the test supplicant) derives its keys the same way.
func ExportKeys(st *tls.ConnectionState) (Keys, error) { return exportKeys(st) }

func exportKeys(st *tls.ConnectionState) (Keys, error) {
	var (
		km  []byte
		err error
	)
	switch st.Version {
	case tls.VersionTLS13:
		km, err = st.ExportKeyingMaterial(labelTLS13, []byte{0x0D}, 128)
	case tls.VersionTLS12:
		// The context must be nil, not empty: Go length-prefixes any
		// non-nil context on TLS 1.2 and the MSK would differ from the
		// peer's.
		km, err = st.ExportKeyingMaterial(labelTLS12, nil, 128)
	default:
		return Keys{}, fmt.Errorf("eaptls: unsupported TLS version %#x", st.Version)
	}
	if err != nil {
		return Keys{}, fmt.Errorf("eaptls: export keying material: %w", err)
	}
	return Keys{MSK: km[:64:64], EMSK: km[64:128:128]}, nil
}
