package peers

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseDetail(t *testing.T) {
	type rec struct {
		header string
		attrs  map[string]string // first values checked
		names  int
	}
	tests := []struct {
		name string
		in   string
		want []rec
	}{
		{"FreeRADIUS 3.2 sample", readTestdata(t, "detail_acct.txt"), []rec{
			{"Sun Dec  6 15:55:39 2026", map[string]string{
				"User-Name": "aabbcc000001", "Acct-Status-Type": "Start", "Acct-Session-Id": "sess-1",
				"Acct-Delay-Time": "0", "Event-Timestamp": "May 28 2026 20:26:40 UTC", "Acct-Session-Time": "0",
				"Calling-Station-Id": "AA-BB-CC-00-00-01", "NAS-IP-Address": "127.0.0.1", "NAS-Port-Type": "Ethernet",
				"Class": "0x636c6f75643a313030", "Timestamp": "1796572539",
			}, 11},
			{"Sun Dec  6 15:55:39 2026", map[string]string{
				"Acct-Status-Type": "Interim-Update", "Acct-Delay-Time": "5", "Acct-Session-Time": "1", "Class": "0x00ff10",
			}, 9},
			{"Sun Dec  6 15:55:39 2026", map[string]string{
				"User-Name": `we "quote" and \ back`, "Acct-Session-Id": "sess-2", "Reply-Message": "tab\there",
				"Tunnel-Private-Group-Id": "200",
			}, 8},
			{"Sun Dec  6 15:55:39 2026", map[string]string{
				"Acct-Status-Type": "Stop", "Acct-Delay-Time": "10", "Acct-Session-Time": "2", "Acct-Terminate-Cause": "User-Request",
			}, 8},
		}},
		{"empty", "", nil},
		{"last record cut short, repeats kept", "Mon Jan  1 00:00:00 2026\n\tClass = 0x01\n\tClass = 0x02\n\tUser-Name = \"oct\\001al\\\\\\q\"", []rec{
			{"Mon Jan  1 00:00:00 2026", map[string]string{"Class": "0x01", "User-Name": "oct\x01al\\\\q"}, 3},
		}},
		{"stray lines skipped", "\tOrphan = 1\n\nH\n\tnot an attribute\n\tA = \"b\"\n\n\n", []rec{
			{"H", map[string]string{"A": "b"}, 1},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseDetail(strings.NewReader(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("%d records, want %d: %+v", len(got), len(tc.want), got)
			}
			for i, w := range tc.want {
				g := got[i]
				if g.Header != w.header || len(g.Names) != w.names {
					t.Errorf("record %d: header %q, %d attributes; want %q, %d", i, g.Header, len(g.Names), w.header, w.names)
				}
				for name, v := range w.attrs {
					if g.Get(name) != v {
						t.Errorf("record %d: %s = %q, want %q", i, name, g.Get(name), v)
					}
				}
			}
		})
	}
	if got, _ := ParseDetail(strings.NewReader("H\n\tClass = 0x01\n\tClass = 0x02\n")); !reflect.DeepEqual(got[0].Attrs["Class"], []string{"0x01", "0x02"}) {
		t.Errorf("repeated attribute: %v", got[0].Attrs)
	}
}

func TestDetailFiles(t *testing.T) {
	dir := t.TempDir()
	f := &FreeRADIUS{Detail: filepath.Join(dir, "detail"), AuthDetail: filepath.Join(dir, "auth-detail")}
	if n, err := f.CountAccountingRecords(); err != nil || n != 0 {
		t.Fatalf("no detail file yet: %d, %v; want 0, nil", n, err)
	}
	if recs, err := f.AuthRecords(); err != nil || recs != nil {
		t.Fatalf("no auth detail file yet: %v, %v; want none", recs, err)
	}
	if err := os.WriteFile(f.Detail, []byte(readTestdata(t, "detail_acct.txt")), 0o600); err != nil {
		t.Fatal(err)
	}
	if n, err := f.CountAccountingRecords(); err != nil || n != 4 {
		t.Fatalf("CountAccountingRecords = %d, %v; want 4", n, err)
	}
}

func FuzzParseDetail(f *testing.F) {
	f.Add(readTestdata(f, "detail_acct.txt"))
	f.Add("H\n\tA = \"\\\"\\\\\\n\\377\"\n\n")
	f.Fuzz(func(t *testing.T, in string) {
		recs, err := ParseDetail(strings.NewReader(in))
		if err != nil {
			return // a line over 1 MiB
		}
		for _, r := range recs {
			total := 0
			for _, v := range r.Attrs {
				total += len(v)
			}
			if total != len(r.Names) {
				t.Fatalf("%d values for %d names", total, len(r.Names))
			}
		}
	})
}
