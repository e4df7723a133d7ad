package cache

import (
	"encoding/json"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// appendEventJSON appends ev as the same bytes json.Marshal(eventRecord)
// produces. The local NAC writes one event per decision, and reflection
// made encoding them a sixth of the daemon's CPU for each MAB answer;
// the fuzz test holds the two encoders to identical output.
func appendEventJSON(b []byte, ev *Event) ([]byte, error) {
	if y := ev.Time.Year(); y < 0 || y > 9999 {
		// Let encoding/json report the out-of-range year as it always has.
		j, err := json.Marshal(eventRecord(*ev))
		return append(b, j...), err
	}
	var buf [16]Field
	fields := buf[:0]
	for k, v := range ev.Fields {
		fields = append(fields, Field{k, v})
	}
	slices.SortFunc(fields, func(a, b Field) int { return strings.Compare(a.Key, b.Key) })
	return appendEventFieldsJSON(b, ev, fields), nil
}

// appendEventFieldsJSON appends ev with fields, in their order, in place
// of ev.Fields. Keys must be unique; the time's year within 0-9999.
func appendEventFieldsJSON(b []byte, ev *Event, fields []Field) []byte {
	b = append(b, `{"id":`...)
	b = appendJSONString(b, ev.ID)
	b = append(b, `,"type":`...)
	b = appendJSONString(b, ev.Type)
	b = append(b, `,"time":"`...)
	b = ev.Time.AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	if ev.MAC != "" {
		b = append(b, `,"mac":`...)
		b = appendJSONString(b, ev.MAC)
	}
	if ev.Identity != "" {
		b = append(b, `,"identity":`...)
		b = appendJSONString(b, ev.Identity)
	}
	if ev.Reason != "" {
		b = append(b, `,"reason":`...)
		b = appendJSONString(b, ev.Reason)
	}
	if len(fields) > 0 {
		b = append(b, `,"fields":{`...)
		for i, f := range fields {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, f.Key)
			b = append(b, ':')
			b = appendJSONString(b, f.Value)
		}
		b = append(b, '}')
	}
	return append(b, '}')
}

const hexDigits = "0123456789abcdef"

// appendJSONString quotes s as encoding/json does with HTML escaping on:
// <, > and & escaped, invalid UTF-8 replaced by U+FFFD, U+2028 and U+2029
// escaped.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
