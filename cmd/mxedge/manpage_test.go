package main

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

var flagInText = regexp.MustCompile(`--([a-z][a-z-]*)`)

// flagsOf lists the --flags a text names, sorted.
func flagsOf(s string) []string {
	var out []string
	for _, m := range flagInText.FindAllStringSubmatch(s, -1) {
		if !slices.Contains(out, m[1]) {
			out = append(out, m[1])
		}
	}
	slices.Sort(out)
	return out
}

// TestManPageSynopsis: the man page's SYNOPSIS names, for every command,
// the flags the command takes (from its --help), and the synopsis --help
// prints does too.
func TestManPageSynopsis(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../packaging/deb/mxedge.1")
	if err != nil {
		t.Fatal(err)
	}
	page := strings.ReplaceAll(string(b), `\-`, "-")
	start, end := strings.Index(page, ".SH SYNOPSIS\n"), strings.Index(page, ".SH DESCRIPTION")
	if start < 0 || end < start {
		t.Fatal("no SYNOPSIS section")
	}
	man := map[string][]string{}
	for _, chunk := range strings.Split(page[start:end], ".br\n") {
		line := strings.NewReplacer(`\fR`, "", `\fB`, "", `\fI`, "", "\n", " ").Replace(chunk)
		fields := strings.Fields(line[strings.Index(line, "mxedge ")+len("mxedge "):])
		cmd := fields[0]
		if cmd == "cache" && fields[1] == "recover" {
			cmd = "cache recover"
		}
		man[cmd] = flagsOf(line)
	}
	for cmd, syn := range synopses {
		out, _, code := runCLI(append(strings.Fields(cmd), "--help")...)
		if code != 0 {
			t.Fatalf("%s --help: exit %d", cmd, code)
		}
		// PrintDefaults lists each flag as "  -name …".
		var real []string
		for _, m := range regexp.MustCompile(`(?m)^  -([a-z-]+)`).FindAllStringSubmatch(out, -1) {
			real = append(real, m[1])
		}
		slices.Sort(real)
		if got := flagsOf(syn); !slices.Equal(got, real) {
			t.Errorf("%s: usage synopsis flags %v, command flags %v", cmd, got, real)
		}
		if got, ok := man[cmd]; !ok {
			t.Errorf("man page SYNOPSIS lacks mxedge %s", cmd)
		} else if !slices.Equal(got, real) {
			t.Errorf("man page: mxedge %s flags %v, command flags %v", cmd, got, real)
		}
	}
}

// TestCompletionFlags: the bash completion offers every command's flags.
func TestCompletionFlags(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../packaging/completion/mxedge.bash")
	if err != nil {
		t.Fatal(err)
	}
	comp := string(b)
	for cmd, syn := range synopses {
		for _, f := range flagsOf(syn) {
			if !strings.Contains(comp, "--"+f) {
				t.Errorf("completion lacks --%s of mxedge %s", f, cmd)
			}
		}
		if first := strings.Fields(cmd)[0]; !strings.Contains(comp, first) {
			t.Errorf("completion lacks command %s", first)
		}
	}
}
