package packet

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
)

// ErrCipherLen is returned for hidden attribute values whose length cannot
// be a valid ciphertext.
var ErrCipherLen = errors.New("encrypted attribute has a bad length")

// xorChain implements the RFC 2865 §5.2 stream: block i is XORed with
// MD5(secret + prev), where prev is iv for the first block and the previous
// ciphertext block after that. decrypt selects which side feeds the chain.
func xorChain(m *md5State, dst, src, secret, iv []byte, decrypt bool) {
	h, sum := m.h, m.sum[:]
	// iv goes through the hash.Hash interface: handing it over directly
	// made every caller's authenticator escape to the heap.
	prev := m.iv[:copy(m.iv[:], iv)]
	for i := 0; i < len(src); i += 16 {
		h.Reset()
		h.Write(secret)
		h.Write(prev)
		h.Sum(sum[:0])
		for j := 0; j < 16; j++ {
			dst[i+j] = src[i+j] ^ sum[j]
		}
		if decrypt {
			prev = src[i : i+16]
		} else {
			prev = dst[i : i+16]
		}
	}
}

func xorChainPooled(dst, src, secret, iv []byte, decrypt bool) {
	m := getMD5()
	xorChain(m, dst, src, secret, iv, decrypt)
	md5Pool.Put(m)
}

// DecryptUserPassword returns the padded plaintext of a User-Password value
// (RFC 2865 §5.2), appended to dst. Trailing NUL padding is kept so a proxy
// can re-encrypt it octet for octet; see TrimPassword.
func DecryptUserPassword(dst, enc, secret []byte, ra [16]byte) ([]byte, error) {
	if len(enc) < 16 || len(enc) > 128 || len(enc)%16 != 0 {
		return dst, ErrCipherLen
	}
	n := len(dst)
	dst = append(dst, make([]byte, len(enc))...)
	xorChainPooled(dst[n:], enc, secret, ra[:], true)
	return dst, nil
}

// EncryptUserPassword encrypts plain (padded to 16 with NULs, at most 128
// octets) for secret and Request Authenticator ra, appending to dst.
func EncryptUserPassword(dst, plain, secret []byte, ra [16]byte) ([]byte, error) {
	if len(plain) > 128 {
		return dst, ErrCipherLen
	}
	l := (len(plain) + 15) / 16 * 16
	if l == 0 {
		l = 16
	}
	n := len(dst)
	dst = append(dst, make([]byte, l)...)
	copy(dst[n:], plain)
	xorChainPooled(dst[n:], dst[n:], secret, ra[:], false)
	return dst, nil
}

// TrimPassword drops the NUL padding of a decrypted User-Password.
func TrimPassword(p []byte) []byte {
	for len(p) > 0 && p[len(p)-1] == 0 {
		p = p[:len(p)-1]
	}
	return p
}

// Salter hands out salts for one packet: the most significant bit set and
// no value repeated within the packet (RFC 2548 §2.4.2, RFC 2868 §3.5).
type Salter struct{ next uint16 }

// NewSalter starts at a random salt.
func NewSalter() *Salter {
	var b [2]byte
	rand.Read(b[:])
	return &Salter{next: binary.BigEndian.Uint16(b[:])}
}

// Next returns the next salt.
func (s *Salter) Next() [2]byte {
	v := s.next | 0x8000
	s.next++
	return [2]byte{byte(v >> 8), byte(v)}
}

// SaltDecrypt decrypts a salted value (salt ‖ ciphertext), as used by
// Tunnel-Password after its tag and by MS-MPPE-Send/Recv-Key. ra is the
// Request Authenticator of the Access-Request being answered. The result is
// the padded plaintext, whose first octet is the key or password length.
func SaltDecrypt(dst, v, secret []byte, ra [16]byte) ([]byte, error) {
	if len(v) < 2+16 || (len(v)-2)%16 != 0 {
		return dst, ErrCipherLen
	}
	var iv [18]byte
	copy(iv[:16], ra[:])
	copy(iv[16:], v[:2])
	n := len(dst)
	dst = append(dst, make([]byte, len(v)-2)...)
	xorChainPooled(dst[n:], v[2:], secret, iv[:], true)
	if int(dst[n]) > len(v)-3 {
		return dst[:n], ErrCipherLen
	}
	return dst, nil
}

// SaltEncrypt encrypts a padded plaintext (multiple of 16 octets, first
// octet the length) under secret, ra and salt, appending salt ‖ ciphertext.
func SaltEncrypt(dst, plain, secret []byte, ra [16]byte, salt [2]byte) ([]byte, error) {
	if len(plain) == 0 || len(plain)%16 != 0 {
		return dst, ErrCipherLen
	}
	var iv [18]byte
	copy(iv[:16], ra[:])
	copy(iv[16:], salt[:])
	dst = append(dst, salt[0], salt[1])
	n := len(dst)
	dst = append(dst, plain...)
	xorChainPooled(dst[n:], dst[n:], secret, iv[:], false)
	return dst, nil
}

// SaltPlaintext builds the padded plaintext for a key or password:
// a length octet, the data, then NULs to a multiple of 16.
func SaltPlaintext(data []byte) []byte {
	l := (1 + len(data) + 15) / 16 * 16
	p := make([]byte, l)
	p[0] = byte(len(data))
	copy(p[1:], data)
	return p
}

// VSA is one vendor-specific sub-attribute in the common RFC 2865 §5.26
// layout (one octet type, one octet length).
type VSA struct {
	Vendor uint32
	Type   uint8
	Value  []byte
}

// ParseVSA splits a Vendor-Specific value into sub-attributes. Vendors
// that don't use the common layout return ok=false and are passed through
// untouched by callers.
func ParseVSA(v []byte, out []VSA) ([]VSA, bool) {
	if len(v) < 4+2 {
		return out, false
	}
	vendor := binary.BigEndian.Uint32(v[:4])
	for i := 4; i < len(v); {
		if len(v)-i < 2 {
			return out, false
		}
		l := int(v[i+1])
		if l < 2 || i+l > len(v) {
			return out, false
		}
		out = append(out, VSA{Vendor: vendor, Type: v[i], Value: v[i+2 : i+l]})
		i += l
	}
	return out, true
}

// AppendVSA appends a Vendor-Specific attribute holding one sub-attribute.
func AppendVSA(dst []byte, vendor uint32, t uint8, v []byte) ([]byte, error) {
	if len(v) > 247 {
		return dst, ErrTooLong
	}
	dst = append(dst, AttrVendorSpecific, byte(len(v)+8), 0, 0, 0, 0, t, byte(len(v)+2))
	binary.BigEndian.PutUint32(dst[len(dst)-6:], vendor)
	return append(dst, v...), nil
}
