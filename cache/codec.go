package cache

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// recordVersion is the first byte of every stored entry. It changes with the
// layout below; the schema migration re-encodes old records.
const recordVersion = 2

// Record layout (v2):
//
//	version   1 byte
//	expiresAt 8 bytes, big-endian Unix nanoseconds (0 = zero time)
//	strings   uvarint length + bytes: MAC, AuthType, UserName, CN, SANEmail,
//	          SANUPN, SANDNS, Serial, Issuer, VLAN, Role, Site
//	varints   SessionTimeout (ns), LastAuthAt (Unix ns, 0 = zero time)
//	uvarint   attribute count, then per attribute: Name, Type (1 byte),
//	          VendorID (uvarint), VendorType (1 byte), Value, Raw
//
// ExpiresAt sits at a fixed offset so that reads, sweeps and deletes learn
// the expiry (and so the TTL index key) without decoding the rest.
const recordHeader = 9

var errCorrupt = errors.New("cache: corrupt entry record")

func encodeEntry(e *Entry) []byte {
	n := recordHeader + 64
	for _, s := range e.strings() {
		n += len(s) + 2
	}
	for _, a := range e.Authorization.Attributes {
		n += len(a.Name) + len(a.Value) + len(a.Raw) + 12
	}
	b := make([]byte, recordHeader, n)
	b[0] = recordVersion
	binary.BigEndian.PutUint64(b[1:], uint64(unixNano(e.ExpiresAt)))
	for _, s := range e.strings() {
		b = appendString(b, s)
	}
	b = binary.AppendVarint(b, int64(e.Authorization.SessionTimeout))
	b = binary.AppendVarint(b, unixNano(e.LastAuthAt))
	b = binary.AppendUvarint(b, uint64(len(e.Authorization.Attributes)))
	for _, a := range e.Authorization.Attributes {
		b = appendString(b, a.Name)
		b = append(b, a.Type)
		b = binary.AppendUvarint(b, uint64(a.VendorID))
		b = append(b, a.VendorType)
		b = appendString(b, a.Value)
		b = appendString(b, string(a.Raw))
	}
	return b
}

func (e *Entry) strings() [12]string {
	id, az := &e.Identity, &e.Authorization
	return [12]string{e.MAC, e.AuthType, id.UserName, id.CN, id.SANEmail,
		id.SANUPN, id.SANDNS, id.Serial, id.Issuer, az.VLAN, az.Role, e.Site}
}

func decodeEntry(b []byte) (Entry, error) {
	var e Entry
	if len(b) < recordHeader {
		return e, errCorrupt
	}
	if b[0] != recordVersion {
		return e, fmt.Errorf("cache: entry record version %d, want %d", b[0], recordVersion)
	}
	e.ExpiresAt = fromUnixNano(int64(binary.BigEndian.Uint64(b[1:])))
	// One copy out of the mmap for all strings: they are substrings of it.
	r := reader{s: string(b[recordHeader:])}
	id, az := &e.Identity, &e.Authorization
	for _, p := range [12]*string{&e.MAC, &e.AuthType, &id.UserName, &id.CN, &id.SANEmail,
		&id.SANUPN, &id.SANDNS, &id.Serial, &id.Issuer, &az.VLAN, &az.Role, &e.Site} {
		*p = r.string()
	}
	az.SessionTimeout = time.Duration(r.varint())
	e.LastAuthAt = fromUnixNano(r.varint())
	n := r.uvarint()
	// Each attribute takes at least 6 bytes, which bounds the allocation a
	// corrupt count can cause.
	if n > uint64(len(r.s))/6 {
		return e, errCorrupt
	}
	if n > 0 {
		az.Attributes = make([]Attribute, n)
	}
	for i := range az.Attributes {
		a := &az.Attributes[i]
		a.Name = r.string()
		a.Type = r.byte()
		v := r.uvarint()
		if v > 1<<32-1 {
			r.err = true
		}
		a.VendorID = uint32(v)
		a.VendorType = r.byte()
		a.Value = r.string()
		if raw := r.string(); len(raw) > 0 {
			a.Raw = []byte(raw)
		}
	}
	if r.err || len(r.s) != 0 {
		return Entry{}, errCorrupt
	}
	return e, nil
}

// recordExpiry reads the expiry of a stored record without decoding it.
func recordExpiry(b []byte) (int64, bool) {
	if len(b) < recordHeader || b[0] != recordVersion {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(b[1:])), true
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// unixNano maps the zero time to 0 so that "unset" survives a round trip;
// time.Time{}.UnixNano() is outside int64's range.
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// reader walks a record copied into one string. encoding/binary reads
// varints from []byte, so they are copied through a small stack window
// rather than converting the rest of the record.
type reader struct {
	s   string
	err bool
}

func (r *reader) window() []byte {
	var w [binary.MaxVarintLen64]byte
	return w[:copy(w[:], r.s)]
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.window())
	if n <= 0 {
		r.err, r.s = true, ""
		return 0
	}
	r.s = r.s[n:]
	return v
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.window())
	if n <= 0 {
		r.err, r.s = true, ""
		return 0
	}
	r.s = r.s[n:]
	return v
}

func (r *reader) byte() byte {
	if len(r.s) == 0 {
		r.err = true
		return 0
	}
	c := r.s[0]
	r.s = r.s[1:]
	return c
}

func (r *reader) string() string {
	n := r.uvarint()
	if n > uint64(len(r.s)) {
		r.err, r.s = true, ""
		return ""
	}
	s := r.s[:n]
	r.s = r.s[n:]
	return s
}
