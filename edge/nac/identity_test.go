package nac

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"testing"
)

// FuzzSanUPN: the SAN extension comes from a client certificate, so its
// reader must survive anything.
func FuzzSanUPN(f *testing.F) {
	f.Add([]byte("\x30\x20\xa0\x1e\x06\x0a\x2b\x06\x01\x04\x01\x82\x37\x14\x02\x03\xa0\x10\x0c\x0ecarol@corp.exa"))
	f.Add([]byte("\x30\x09\x82\x07a.b.com"))
	f.Fuzz(func(t *testing.T, v []byte) {
		c := &x509.Certificate{Extensions: []pkix.Extension{{Id: oidSAN, Value: v}}}
		_ = sanUPN(c)
	})
}

func TestSanUPN(t *testing.T) {
	upn := "carol@corp.example"
	utf8 := append([]byte{0x0c, byte(len(upn))}, upn...)
	val := append([]byte{0xa0, byte(len(utf8))}, utf8...)
	body := append([]byte{0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x14, 0x02, 0x03}, val...)
	on := append([]byte{0xa0, byte(len(body))}, body...)
	dns := []byte{0x82, 0x07, 'a', '.', 'b', '.', 'c', 'o', 'm'}
	seq := append([]byte{0x30, byte(len(on) + len(dns))}, append(dns, on...)...)
	c := &x509.Certificate{Extensions: []pkix.Extension{{Id: oidSAN, Value: seq}}}
	if got := sanUPN(c); got != upn {
		t.Fatalf("got %q", got)
	}
}
