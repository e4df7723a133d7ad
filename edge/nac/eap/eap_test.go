package eap

import (
	"bytes"
	"errors"
	"testing"
)

var parseCases = []struct {
	name string
	in   []byte
	want Packet
	err  error
}{
	{"identity response", []byte{2, 7, 0, 9, 1, 'a', 'l', 'i', 'x'}, Packet{Code: CodeResponse, Identifier: 7, Type: TypeIdentity, Data: []byte("alix")}, nil},
	{"tls start", []byte{1, 8, 0, 6, 13, 0x20}, Packet{Code: CodeRequest, Identifier: 8, Type: TypeTLS, Data: []byte{0x20}}, nil},
	{"empty identity", []byte{2, 1, 0, 5, 1}, Packet{Code: CodeResponse, Identifier: 1, Type: TypeIdentity, Data: []byte{}}, nil},
	{"success", []byte{3, 9, 0, 4}, Packet{Code: CodeSuccess, Identifier: 9}, nil},
	{"failure", []byte{4, 9, 0, 4}, Packet{Code: CodeFailure, Identifier: 9}, nil},
	{"short", []byte{2, 1, 0}, Packet{}, ErrShort},
	{"empty", nil, Packet{}, ErrShort},
	{"length too big", []byte{2, 1, 0, 9, 1, 'a'}, Packet{}, ErrLength},
	{"length too small", []byte{2, 1, 0, 5, 1, 'a'}, Packet{}, ErrLength},
	{"trailing padding", []byte{3, 1, 0, 4, 0}, Packet{}, ErrLength},
	{"request without type", []byte{1, 1, 0, 4}, Packet{}, ErrEmptyType},
	{"success with data", []byte{3, 1, 0, 5, 0}, Packet{}, ErrLength},
	{"bad code", []byte{5, 1, 0, 4}, Packet{}, ErrCode},
	{"code zero", []byte{0, 1, 0, 4}, Packet{}, ErrCode},
}

func TestParse(t *testing.T) {
	for _, tc := range parseCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.in)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Code != tc.want.Code || got.Identifier != tc.want.Identifier || got.Type != tc.want.Type || !bytes.Equal(got.Data, tc.want.Data) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			enc, err := got.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(enc, tc.in) {
				t.Fatalf("re-encode = %x, want %x", enc, tc.in)
			}
		})
	}
}

func TestEncodeErrors(t *testing.T) {
	if _, err := (Packet{Code: 9}).Encode(); !errors.Is(err, ErrCode) {
		t.Fatalf("err = %v", err)
	}
	if _, err := (Packet{Code: CodeRequest, Data: make([]byte, MaxLen)}).Encode(); !errors.Is(err, ErrTooLong) {
		t.Fatalf("err = %v", err)
	}
	b, err := (Packet{Code: CodeSuccess, Identifier: 3, Type: TypeTLS, Data: []byte{1}}).Encode()
	if err != nil || !bytes.Equal(b, []byte{3, 3, 0, 4}) {
		t.Fatalf("success encodes as %x, %v", b, err)
	}
}

func TestExpandedNak(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want []Type
		ok   bool
	}{
		{"tls and vendor", []byte{0, 0, 0, 0, 0, 0, 3, 254, 0, 0, 0, 0, 0, 0, 13, 254, 0, 0, 9, 0, 0, 0, 1}, []Type{TypeTLS}, true},
		{"none", []byte{0, 0, 0, 0, 0, 0, 3, 254, 0, 0, 0, 0, 0, 0, 0}, []Type{0}, true},
		{"not nak", []byte{0, 0, 0, 0, 0, 0, 4}, nil, false},
		{"ragged", []byte{0, 0, 0, 0, 0, 0, 3, 254}, nil, false},
	}
	for _, tc := range tests {
		got, ok := ExpandedNakTypes(tc.in)
		if ok != tc.ok || len(got) != len(tc.want) {
			t.Fatalf("%s: got %v %v", tc.name, got, ok)
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Fatalf("%s: got %v", tc.name, got)
			}
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, tc := range parseCases {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Parse(b)
		if err != nil {
			return
		}
		enc, err := p.Encode()
		if err != nil {
			t.Fatalf("parsed packet does not encode: %v", err)
		}
		if !bytes.Equal(enc, b) {
			t.Fatalf("round trip %x -> %x", b, enc)
		}
		ExpandedNakTypes(p.Data)
	})
}
