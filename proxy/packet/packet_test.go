package packet

import (
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"testing"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2868"
	"layeh.com/radius/vendors/microsoft"
)

var rfcSecret = []byte("xyzzy5461")

// RFC 2865 §7.1: Access-Request for user "nemo", password "arctangent".
var rfc2865Request = []byte{
	0x01, 0x00, 0x00, 0x38, 0x0f, 0x40, 0x3f, 0x94, 0x73, 0x97, 0x80, 0x57, 0xbd, 0x83, 0xd5, 0xcb,
	0x98, 0xf4, 0x22, 0x7a, 0x01, 0x06, 0x6e, 0x65, 0x6d, 0x6f, 0x02, 0x12, 0x0d, 0xbe, 0x70, 0x8d,
	0x93, 0xd4, 0x13, 0xce, 0x31, 0x96, 0xe4, 0x3f, 0x78, 0x2a, 0x0a, 0xee, 0x04, 0x06, 0xc0, 0xa8,
	0x01, 0x10, 0x05, 0x06, 0x00, 0x00, 0x00, 0x03,
}

// RFC 2865 §7.1: the Access-Accept answering it.
var rfc2865Accept = []byte{
	0x02, 0x00, 0x00, 0x26, 0x86, 0xfe, 0x22, 0x0e, 0x76, 0x24, 0xba, 0x2a, 0x10, 0x05, 0xf6, 0xbf,
	0x9b, 0x55, 0xe0, 0xb2, 0x06, 0x06, 0x00, 0x00, 0x00, 0x01, 0x0f, 0x06, 0x00, 0x00, 0x00, 0x00,
	0x0e, 0x06, 0xc0, 0xa8, 0x01, 0x03,
}

// RFC 5997 §6.1: Status-Server with Message-Authenticator.
var rfc5997Status = []byte{
	0x0c, 0xda, 0x00, 0x26, 0x8a, 0x54, 0xf4, 0x68, 0x6f, 0xb3, 0x94, 0xc5, 0x28, 0x66, 0xe3, 0x02,
	0x18, 0x5d, 0x06, 0x23, 0x50, 0x12, 0x5a, 0x66, 0x5e, 0x2e, 0x1e, 0x84, 0x11, 0xf3, 0xe2, 0x43,
	0x82, 0x20, 0x97, 0xc8, 0x4f, 0xa3,
}

func TestRFC2865Vectors(t *testing.T) {
	req, err := Parse(rfc2865Request)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyRequest(req, rfcSecret); err != nil {
		t.Fatalf("request: %v", err)
	}
	enc, _ := req.Lookup(AttrUserPassword)
	plain, err := DecryptUserPassword(nil, enc, rfcSecret, req.Authenticator)
	if err != nil || string(TrimPassword(plain)) != "arctangent" {
		t.Fatalf("password = %q, %v", plain, err)
	}
	again, err := EncryptUserPassword(nil, []byte("arctangent"), rfcSecret, req.Authenticator)
	if err != nil || !bytes.Equal(again, enc) {
		t.Fatalf("re-encrypted password = %x, want %x", again, enc)
	}
	resp, err := Parse(rfc2865Accept)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyResponse(resp, req.Authenticator, rfcSecret); err != nil {
		t.Fatalf("response: %v", err)
	}
	// Re-signing the accept must reproduce the RFC's Response Authenticator.
	b := append([]byte(nil), rfc2865Accept...)
	copy(b[4:20], make([]byte, 16))
	if err := Sign(b, rfcSecret, &req.Authenticator); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, rfc2865Accept) {
		t.Fatalf("signed accept = %x", b)
	}
	if _, err := VerifyResponse(resp, req.Authenticator, []byte("wrong")); !errors.Is(err, ErrAuthenticator) {
		t.Fatalf("wrong secret: %v", err)
	}
}

func TestRFC5997MessageAuthenticator(t *testing.T) {
	p, err := Parse(rfc5997Status)
	if err != nil {
		t.Fatal(err)
	}
	hasMA, err := VerifyRequest(p, rfcSecret)
	if err != nil || !hasMA {
		t.Fatalf("hasMA=%v err=%v", hasMA, err)
	}
	b := append([]byte(nil), rfc5997Status...)
	copy(b[len(b)-16:], make([]byte, 16))
	if err := Sign(b, rfcSecret, nil); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, rfc5997Status) {
		t.Fatalf("recomputed MA differs:\n got %x\nwant %x", b, rfc5997Status)
	}
	b[len(b)-1] ^= 1
	p, _ = Parse(b)
	if _, err := VerifyRequest(p, rfcSecret); !errors.Is(err, ErrMessageAuth) {
		t.Fatalf("tampered MA: %v", err)
	}
}

func TestParseFraming(t *testing.T) {
	ok := append([]byte(nil), rfc2865Accept...)
	padded := append(append([]byte(nil), ok...), 0, 0, 0)
	cases := []struct {
		name string
		b    []byte
		err  error
	}{
		{"valid", ok, nil},
		{"trailing padding ignored", padded, nil},
		{"short header", ok[:19], ErrShort},
		{"shorter than Length", ok[:len(ok)-1], ErrShort},
		{"length below 20", mutate(ok, func(b []byte) { b[2], b[3] = 0, 19 }), ErrLength},
		{"length above 4096", mutate(ok, func(b []byte) { b[2], b[3] = 0x10, 0x01 }), ErrLength},
		{"attribute length 1", mutate(ok, func(b []byte) { b[21] = 1 }), ErrAttribute},
		{"attribute overruns", mutate(ok, func(b []byte) { b[21] = 200 }), ErrAttribute},
		{"dangling octet", mutate(append(append([]byte(nil), ok...), 0x06), func(b []byte) { b[3]++ }), ErrAttribute},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse(tc.b)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if err == nil && len(p.Raw) != len(ok) {
				t.Fatalf("Raw is %d octets, want %d", len(p.Raw), len(ok))
			}
		})
	}
}

func mutate(b []byte, f func([]byte)) []byte {
	c := append([]byte(nil), b...)
	f(c)
	return c
}

// An accounting request signed here must verify with layeh, and the reverse.
func TestAccountingAgainstLayeh(t *testing.T) {
	secret := []byte("s3cret-of-some-length")
	b := Append(nil, CodeAccountingRequest, 7, [16]byte{})
	b, _ = AppendAttr(b, AttrUserName, []byte("alice"))
	b = AppendMessageAuthenticator(b)
	b, _ = AppendAttr(b, AttrAcctStatusType, []byte{0, 0, 0, 1})
	if err := Sign(b, secret, nil); err != nil {
		t.Fatal(err)
	}
	if !radius.IsAuthenticRequest(b, secret) {
		t.Fatal("layeh rejects our accounting request authenticator")
	}
	p, _ := Parse(b)
	if _, err := VerifyRequest(p, secret); err != nil {
		t.Fatal(err)
	}
	// MA over zeros, independently computed.
	z := append([]byte(nil), b...)
	copy(z[4:20], make([]byte, 16))
	off, _ := maOffset(z)
	copy(z[off:off+16], make([]byte, 16))
	h := hmac.New(md5.New, secret)
	h.Write(z)
	if !bytes.Equal(h.Sum(nil), b[off:off+16]) {
		t.Fatal("accounting MA not computed over a zero authenticator")
	}

	lp := radius.New(radius.CodeAccountingRequest, secret)
	rfc2865.UserName_SetString(lp, "bob")
	raw, err := lp.Encode()
	if err != nil {
		t.Fatal(err)
	}
	p, _ = Parse(raw)
	if _, err := VerifyRequest(p, secret); err != nil {
		t.Fatalf("layeh-encoded accounting request: %v", err)
	}
}

func TestResponseMAFirstAndZeroVariant(t *testing.T) {
	secret := []byte("radsec")
	reqAuth := RandomAuthenticator()
	b := Append(nil, CodeAccountingResponse, 9, [16]byte{})
	b = AppendMessageAuthenticator(b)
	if err := Sign(b, secret, &reqAuth); err != nil {
		t.Fatal(err)
	}
	if b[HeaderLen] != AttrMessageAuthenticator {
		t.Fatal("MA is not the first attribute")
	}
	p, _ := Parse(b)
	if _, err := VerifyResponse(p, reqAuth, secret); err != nil {
		t.Fatal(err)
	}
	// FreeRADIUS 3.0 style: MA over zeros, authenticator over the request's.
	z := append([]byte(nil), b...)
	off := HeaderLen + 2
	ma := messageAuthenticator(z, off, &zero16, secret)
	copy(z[off:], ma[:])
	ra := md5Authenticator(z, &reqAuth, secret)
	copy(z[4:20], ra[:])
	p, _ = Parse(z)
	if _, err := VerifyResponse(p, reqAuth, secret); err != nil {
		t.Fatalf("zero-vector MA on Accounting-Response: %v", err)
	}
	// Not acceptable for an Access-Accept.
	z[0] = byte(CodeAccessAccept)
	ra = md5Authenticator(z, &reqAuth, secret)
	copy(z[4:20], ra[:])
	p, _ = Parse(z)
	if _, err := VerifyResponse(p, reqAuth, secret); !errors.Is(err, ErrMessageAuth) {
		t.Fatalf("zero-vector MA on Access-Accept: %v", err)
	}
}

func TestResignKeepsPasswordValid(t *testing.T) {
	secret := []byte("radsec")
	ra := RandomAuthenticator()
	b := Append(nil, CodeAccessRequest, 1, ra)
	b = AppendMessageAuthenticator(b)
	enc, _ := EncryptUserPassword(nil, []byte("hunter2"), secret, ra)
	b, _ = AppendAttr(b, AttrUserPassword, enc)
	if err := Sign(b, secret, nil); err != nil {
		t.Fatal(err)
	}
	if err := Resign(b, 200, secret); err != nil {
		t.Fatal(err)
	}
	lp, err := radius.Parse(b, secret)
	if err != nil {
		t.Fatal(err)
	}
	if lp.Identifier != 200 || rfc2865.UserPassword_GetString(lp) != "hunter2" {
		t.Fatalf("id=%d password=%q", lp.Identifier, rfc2865.UserPassword_GetString(lp))
	}
	p, _ := Parse(b)
	if _, err := VerifyRequest(p, secret); err != nil {
		t.Fatal(err)
	}
}

// Salted attributes must interoperate with layeh's independent codecs.
func TestSaltedAgainstLayeh(t *testing.T) {
	secret := []byte("nas-secret")
	reqAuth := RandomAuthenticator()
	lreq := &radius.Packet{Code: radius.CodeAccessRequest, Secret: secret, Authenticator: reqAuth, Attributes: radius.Attributes{}}
	resp := lreq.Response(radius.CodeAccessAccept)
	key := bytes.Repeat([]byte{0xab}, 32)
	if err := microsoft.MSMPPERecvKey_Add(resp, key); err != nil {
		t.Fatal(err)
	}
	if err := rfc2868.TunnelPassword_Add(resp, 3, []byte("tunnel-pw")); err != nil {
		t.Fatal(err)
	}
	raw, err := resp.Encode()
	if err != nil {
		t.Fatal(err)
	}
	p, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	var vsas []VSA
	for _, a := range p.Attrs {
		switch a.Type {
		case AttrVendorSpecific:
			vsas, _ = ParseVSA(a.Value, vsas[:0])
			plain, err := SaltDecrypt(nil, vsas[0].Value, secret, reqAuth)
			if err != nil || !bytes.Equal(plain[1:1+plain[0]], key) {
				t.Fatalf("MPPE key = %x, %v", plain, err)
			}
			// Re-encrypt for another secret and check layeh reads it.
			other := []byte("radsec")
			enc, _ := SaltEncrypt(nil, plain, other, reqAuth, NewSalter().Next())
			vsa, _ := AppendVSA(nil, VendorMicrosoft, MSMPPERecvKey, enc)
			lresp := lreq.Response(radius.CodeAccessAccept)
			lresp.Secret = other
			lresp.Attributes.Add(AttrVendorSpecific, vsa[2:])
			got, err := microsoft.MSMPPERecvKey_Lookup(lresp, &radius.Packet{Secret: other, Authenticator: reqAuth})
			if err != nil || !bytes.Equal(got, key) {
				t.Fatalf("layeh reads re-encrypted key %x, %v", got, err)
			}
		case AttrTunnelPassword:
			plain, err := SaltDecrypt(nil, a.Value[1:], secret, reqAuth)
			if err != nil || string(plain[1:1+plain[0]]) != "tunnel-pw" || a.Value[0] != 3 {
				t.Fatalf("Tunnel-Password = %q tag %d, %v", plain, a.Value[0], err)
			}
		}
	}
}

func TestSalterUniqueAndMSB(t *testing.T) {
	s := &Salter{next: 0xffff}
	seen := map[[2]byte]bool{}
	for range 300 {
		v := s.Next()
		if v[0]&0x80 == 0 || seen[v] {
			t.Fatalf("salt %x repeated or without MSB", v)
		}
		seen[v] = true
	}
}

func TestStatusServerBuilder(t *testing.T) {
	b := NewStatusServer(nil, 0, []byte("radsec"))
	p, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if p.Code != CodeStatusServer || p.Attrs[0].Type != AttrMessageAuthenticator {
		t.Fatalf("got %s first attr %d", p.Code, p.Attrs[0].Type)
	}
	if has, err := VerifyRequest(p, []byte("radsec")); !has || err != nil {
		t.Fatalf("has=%v err=%v", has, err)
	}
}

func TestAppendAttrTooLong(t *testing.T) {
	if _, err := AppendAttr(nil, 1, make([]byte, 254)); err == nil {
		t.Fatal("254-octet value accepted")
	}
	if err := Sign(make([]byte, MaxLen+1), nil, nil); !errors.Is(err, ErrTooLong) {
		t.Fatalf("oversize sign: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range [][]byte{rfc2865Request, rfc2865Accept, rfc5997Status} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Parse(b)
		if err != nil {
			return
		}
		total := HeaderLen
		for _, a := range p.Attrs {
			total += 2 + len(a.Value)
		}
		if total != len(p.Raw) {
			t.Fatalf("attributes cover %d of %d octets", total, len(p.Raw))
		}
		_, _ = VerifyRequest(p, rfcSecret)
		_, _ = VerifyResponse(p, p.Authenticator, rfcSecret)
		for _, a := range p.Attrs {
			_, _ = SaltDecrypt(nil, a.Value, rfcSecret, p.Authenticator)
			_, _ = DecryptUserPassword(nil, a.Value, rfcSecret, p.Authenticator)
			_, _ = ParseVSA(a.Value, nil)
		}
	})
}

func BenchmarkVerifyAndSign(b *testing.B) {
	secret := []byte("a-reasonable-shared-secret")
	ra := RandomAuthenticator()
	buf := Append(nil, CodeAccessRequest, 1, ra)
	buf = AppendMessageAuthenticator(buf)
	buf, _ = AppendAttr(buf, AttrUserName, []byte("aabbccddeeff"))
	buf, _ = AppendAttr(buf, AttrCallingStationID, []byte("AA-BB-CC-DD-EE-FF"))
	_ = Sign(buf, secret, nil)
	var p Packet
	b.ReportAllocs()
	for b.Loop() {
		if err := p.Parse(buf); err != nil {
			b.Fatal(err)
		}
		if _, err := VerifyRequest(&p, secret); err != nil {
			b.Fatal(err)
		}
		_ = Sign(buf, secret, nil)
	}
}

// BenchmarkHiddenAttributes is the proxy's re-encryption of one
// User-Password and one salted key across a secret change. It allocates
// nothing: the authenticators stay on the stack.
func BenchmarkHiddenAttributes(b *testing.B) {
	in, out := []byte("secret-in"), []byte("secret-out")
	ra, ra2 := RandomAuthenticator(), RandomAuthenticator()
	pw, _ := EncryptUserPassword(nil, []byte("correct horse"), in, ra)
	key, _ := SaltEncrypt(nil, SaltPlaintext(make([]byte, 32)), in, ra, [2]byte{0x80, 1})
	var plain, enc [64]byte
	b.ReportAllocs()
	for b.Loop() {
		p, err := DecryptUserPassword(plain[:0], pw, in, ra)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := EncryptUserPassword(enc[:0], TrimPassword(p), out, ra2); err != nil {
			b.Fatal(err)
		}
		k, err := SaltDecrypt(plain[:0], key, in, ra)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := SaltEncrypt(enc[:0], k, out, ra2, [2]byte{0x80, 2}); err != nil {
			b.Fatal(err)
		}
	}
}

var _ = hex.EncodeToString
