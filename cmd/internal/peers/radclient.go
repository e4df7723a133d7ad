package peers

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// ErrNoReply is returned when radclient got no answer (timeout or a
// silently discarded request).
var ErrNoReply = errors.New("no reply from server")

// Result is what radclient received.
type Result struct {
	// Code is the reply code name, e.g. "Access-Accept", "Access-Reject",
	// "Accounting-Response".
	Code string
	// Attrs holds the reply attributes by name (tag suffix such as ":0"
	// removed), values unquoted, in order of appearance.
	Attrs map[string][]string
	// Output is radclient's full -x output, for failure messages.
	Output string
}

// Attr returns the first value of the named reply attribute, or "".
func (r Result) Attr(name string) string {
	if v := r.Attrs[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// Radclient sends one request with radclient (one try, 2 s timeout) to addr
// ("host:port") with code "auth", "acct", "status", "coa" or "disconnect"
// and attrs in radclient's "Name = value" syntax. Put
// "Message-Authenticator = 0x00" in attrs to have radclient compute it.
// A reject is a Result, not an error; no reply is ErrNoReply.
func Radclient(ctx context.Context, addr, secret, code string, attrs []string) (Result, error) {
	bin, err := LookBin("radclient")
	if err != nil {
		return Result{}, err
	}
	cmd := exec.CommandContext(ctx, bin, "-x", "-r", "1", "-t", "2", addr, code, secret)
	cmd.Stdin = strings.NewReader(strings.Join(attrs, "\n") + "\n")
	out, runErr := cmd.CombinedOutput()
	res := parseRadclient(string(out))
	if res.Code != "" {
		// radclient exits 1 on a reject it didn't "expect": not our error.
		return res, nil
	}
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	if strings.Contains(res.Output, "No reply from server") {
		return res, fmt.Errorf("radclient %s %s: %w", addr, code, ErrNoReply)
	}
	return res, fmt.Errorf("radclient %s %s: %v: %s", addr, code, runErr, strings.TrimSpace(res.Output))
}

// parseRadclient reads the last "Received <Code> Id …" block of radclient
// -x output and its tab-indented "Name = value" attribute lines.
func parseRadclient(out string) Result {
	res := Result{Output: out}
	in := false
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "Received ") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				res.Code = f[1]
				res.Attrs = map[string][]string{}
				in = true
			}
			continue
		}
		if !in {
			continue
		}
		if !strings.HasPrefix(line, "\t") {
			in = false
			continue
		}
		name, value, ok := strings.Cut(strings.TrimSpace(line), " = ")
		if !ok {
			continue
		}
		if i := strings.IndexByte(name, ':'); i > 0 {
			name = name[:i]
		}
		res.Attrs[name] = append(res.Attrs[name], unquote(value))
	}
	return res
}

// unquote strips radclient's double quotes and its \" and \\ escapes.
func unquote(v string) string {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return v
	}
	return strings.NewReplacer(`\"`, `"`, `\\`, `\`).Replace(v[1 : len(v)-1])
}
