package packet

import (
	"crypto/hmac"
	"crypto/md5"
	"errors"
	"testing"
)

// twoMAs is an Access-Request whose first Message-Authenticator is valid
// (computed by hand over the whole packet, the second included) and whose
// second is garbage: what a verifier that stops at the first accepts.
func twoMAs(t testing.TB, secret []byte) []byte {
	t.Helper()
	b := Append(nil, CodeAccessRequest, 7, RandomAuthenticator())
	b = AppendMessageAuthenticator(b)
	b, _ = AppendAttr(b, AttrUserName, []byte("aabbccddeeff"))
	b, _ = AppendAttr(b, AttrMessageAuthenticator, []byte("garbage-garbage!"))
	b[2], b[3] = byte(len(b)>>8), byte(len(b))
	h := hmac.New(md5.New, secret)
	h.Write(b)
	copy(b[HeaderLen+2:HeaderLen+18], h.Sum(nil))
	return b
}

func TestSecondMessageAuthenticatorRefused(t *testing.T) {
	secret := []byte("a-shared-secret")
	b := twoMAs(t, secret)
	p, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if p.Count(AttrMessageAuthenticator) != 2 {
		t.Fatal("test packet lacks its two Message-Authenticators")
	}
	// The first one does verify: without the duplicate check the packet
	// would be accepted.
	want := messageAuthenticator(p.Raw, HeaderLen+2, &p.Authenticator, secret)
	if !hmac.Equal(want[:], p.Raw[HeaderLen+2:HeaderLen+18]) {
		t.Fatal("first Message-Authenticator should verify")
	}
	if _, err := VerifyRequest(p, secret); !errors.Is(err, ErrMessageAuthDup) {
		t.Fatalf("VerifyRequest = %v, want ErrMessageAuthDup", err)
	}
	if _, err := VerifyResponse(p, p.Authenticator, secret); err == nil {
		t.Fatal("VerifyResponse accepted two Message-Authenticators")
	}
	if err := Sign(b, secret, nil); !errors.Is(err, ErrMessageAuthDup) {
		t.Fatalf("Sign = %v, want ErrMessageAuthDup", err)
	}
}

// FuzzVerifyRequest checks VerifyRequest never panics and never accepts a
// packet with more than one Message-Authenticator. Seeded with the
// double-MA request and the RFC examples.
func FuzzVerifyRequest(f *testing.F) {
	secret := []byte("a-shared-secret")
	f.Add(twoMAs(f, secret))
	f.Add(rfc2865Request)
	f.Add(rfc5997Status)
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Parse(b)
		if err != nil {
			return
		}
		if _, err := VerifyRequest(p, secret); err == nil && p.Count(AttrMessageAuthenticator) > 1 {
			t.Fatal("accepted a request with more than one Message-Authenticator")
		}
	})
}
