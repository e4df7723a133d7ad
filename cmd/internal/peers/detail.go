package peers

import (
	"bufio"
	"errors"
	"io"
	"os"
	"strings"
)

// DetailRecord is one accounting record FreeRADIUS wrote to its detail
// file: what actually arrived upstream, so a failover test can check that
// accounting sent during a WAN cut got there once, in order, with
// Acct-Delay-Time raised.
type DetailRecord struct {
	// Header is the record's first line, the time FreeRADIUS wrote it
	// (detail's header "%t", e.g. "Sun Dec  6 15:55:39 2026").
	Header string
	// Attrs holds the values by attribute name in file order. A tag suffix
	// such as ":0" is removed from the name; quoted values are unquoted and
	// unescaped; others (numbers, enumerations, addresses, 0x… octets) are
	// kept as written.
	Attrs map[string][]string
	// Names lists the attribute names in file order, repeats included.
	Names []string
}

// Get returns the first value of the named attribute, or "".
func (r DetailRecord) Get(name string) string {
	if v := r.Attrs[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// AccountingRecords parses the detail file (none yet: no records).
// FreeRADIUS writes a record before it answers, so after an
// Accounting-Response the result is current.
func (f *FreeRADIUS) AccountingRecords() ([]DetailRecord, error) {
	return parseDetailFile(f.Detail)
}

// CountAccountingRecords counts the records in the detail file (0 when
// none was written yet), current after an Accounting-Response as
// AccountingRecords is.
func (f *FreeRADIUS) CountAccountingRecords() (int, error) {
	recs, err := f.AccountingRecords()
	return len(recs), err
}

// AuthRecords parses the Access-Requests logged with LogAuth (none yet:
// no records). FreeRADIUS writes each in authorize, before it answers.
func (f *FreeRADIUS) AuthRecords() ([]DetailRecord, error) {
	return parseDetailFile(f.AuthDetail)
}

// parseDetailFile parses the detail file at path; one not written yet
// holds no records.
func parseDetailFile(path string) ([]DetailRecord, error) {
	file, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer file.Close()
	return ParseDetail(file)
}

// ParseDetail reads FreeRADIUS detail-file records in file order: a header
// line at column 0, then one tab-indented "Name = value" line per
// attribute, then a blank line. A last record without its blank line (a
// file read while being written) is still returned. Lines that are neither
// are skipped rather than failing the whole file; only read errors are
// returned.
func ParseDetail(r io.Reader) ([]DetailRecord, error) {
	var (
		recs []DetailRecord
		cur  *DetailRecord
	)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20) // one attribute line is at most ~1 KiB escaped
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			cur = nil
		case line[0] != '\t' && line[0] != ' ':
			recs = append(recs, DetailRecord{Header: line, Attrs: map[string][]string{}})
			cur = &recs[len(recs)-1]
		case cur != nil:
			name, value, ok := strings.Cut(strings.TrimSpace(line), " = ")
			if !ok || name == "" {
				continue
			}
			if i := strings.IndexByte(name, ':'); i > 0 {
				name = name[:i]
			}
			cur.Attrs[name] = append(cur.Attrs[name], unescapeDetail(value))
			cur.Names = append(cur.Names, name)
		}
	}
	return recs, sc.Err()
}

// unescapeDetail undoes FreeRADIUS 3's string printing (fr_prints): a
// double-quoted value with \\, \", \n, \r, \t and \ooo octal escapes.
// Unquoted values are returned as they are.
func unescapeDetail(v string) string {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return v
	}
	v = v[1 : len(v)-1]
	if !strings.Contains(v, `\`) {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c != '\\' || i+1 == len(v) {
			b.WriteByte(c)
			continue
		}
		i++
		switch e := v[i]; e {
		case '\\', '"':
			b.WriteByte(e)
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		default:
			if i+2 < len(v) && isOctal(e) && isOctal(v[i+1]) && isOctal(v[i+2]) && e <= '3' {
				b.WriteByte((e-'0')<<6 | (v[i+1]-'0')<<3 | (v[i+2] - '0'))
				i += 2
				continue
			}
			b.WriteByte('\\') // not an escape FreeRADIUS writes: keep it
			b.WriteByte(e)
		}
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }
