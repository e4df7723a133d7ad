package config

import (
	"fmt"
	"io"
	"log/slog"
	"strconv"
)

const redacted = "[redacted]"

// Secret is a RADIUS shared secret. Every way of printing, logging or
// marshalling it yields "[redacted]", so a Config can be logged or dumped
// whole; code that signs packets calls Reveal.
type Secret string

// Reveal returns the secret's bytes.
func (s Secret) Reveal() []byte { return []byte(s) }

func (Secret) String() string   { return redacted }
func (Secret) GoString() string { return strconv.Quote(redacted) }

// Format covers the verbs that would otherwise print the underlying string (%x, %d, …).
func (s Secret) Format(f fmt.State, verb rune) {
	switch {
	case verb == 'v' && f.Flag('#'), verb == 'q':
		io.WriteString(f, s.GoString())
	default:
		io.WriteString(f, redacted)
	}
}

func (Secret) LogValue() slog.Value         { return slog.StringValue(redacted) }
func (Secret) MarshalJSON() ([]byte, error) { return []byte(strconv.Quote(redacted)), nil }
func (Secret) MarshalYAML() (any, error)    { return redacted, nil }
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }
