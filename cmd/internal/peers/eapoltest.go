package peers

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// EAPTLS is the supplicant side of one EAP-TLS authentication.
type EAPTLS struct {
	Identity   string // outer identity, e.g. "user@example.org"
	CACert     string // trust for the EAP server certificate (PEM path)
	ClientCert string // client certificate, with intermediates (PEM path)
	PrivateKey string // client key (PEM path)
	// TLS13 allows TLS 1.3 (phase1 "tls_disable_tlsv1_3=0"); otherwise
	// the supplicant is held to TLS 1.2.
	TLS13 bool
	// CallingStationID is the -M MAC; 02:00:00:00:00:01 when empty.
	CallingStationID string
	// Attrs are extra request attributes in eapol_test's -N syntax
	// ("30:s:02-00-00-00-00-01:eduroam" for a Called-Station-Id).
	Attrs []string
}

// EAPResult is what eapol_test reported.
type EAPResult struct {
	Success bool // final line "SUCCESS"
	// MPPEOK and MPPEMismatch are eapol_test's comparison of the MS-MPPE
	// keys in the Accept with the MSK it derived ("MPPE keys OK: 1
	// mismatch: 0" on success).
	MPPEOK       int
	MPPEMismatch int
	TLSVersion   string // "TLSv1.2" or "TLSv1.3" as negotiated
	// Challenges counts Access-Challenge round trips; RequestFragments
	// counts Access-Requests whose EAP payload took more than 1000 bytes
	// (how a long client chain shows up).
	Challenges       int
	RequestFragments int
	// Attrs holds the attributes of the final Access-Accept or -Reject by
	// name: text values as text, others as hex.
	Attrs map[string][]string
	// Output is eapol_test's full output.
	Output string
}

// VLAN returns Tunnel-Private-Group-Id from the final reply (tag octet
// removed), or "".
func (r EAPResult) VLAN() string {
	v := r.Attrs["Tunnel-Private-Group-Id"]
	if len(v) == 0 {
		return ""
	}
	s := v[0]
	if b, err := hex.DecodeString(s); err == nil && len(b) > 0 {
		if b[0] <= 0x1f {
			b = b[1:]
		}
		s = string(b)
	}
	return s
}

// EAPOLTest runs eapol_test for one EAP-TLS authentication against addr
// ("host:port") with secret, no re-authentication and a 10 s timeout. An
// authentication failure is a Result with Success false, not an error.
func EAPOLTest(ctx context.Context, addr, secret string, cfg EAPTLS) (EAPResult, error) {
	bin, err := LookBin("eapol_test")
	if err != nil {
		return EAPResult{}, err
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return EAPResult{}, err
	}
	dir, err := os.MkdirTemp("", "eapol_test-")
	if err != nil {
		return EAPResult{}, err
	}
	defer os.RemoveAll(dir)
	conf := filepath.Join(dir, "eapol.conf")
	if err := os.WriteFile(conf, []byte(eapolConfig(cfg)), 0o600); err != nil {
		return EAPResult{}, err
	}
	mac := cfg.CallingStationID
	if mac == "" {
		mac = "02:00:00:00:00:01"
	}
	args := []string{"-c", conf, "-a", host, "-p", port, "-s", secret, "-M", mac, "-r", "0", "-t", "10"}
	for _, a := range cfg.Attrs {
		args = append(args, "-N"+a)
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	out, runErr := cmd.CombinedOutput()
	res := parseEAPOLTest(string(out))
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	if !res.Success && !strings.Contains(res.Output, "FAILURE") {
		return res, fmt.Errorf("eapol_test: %v (no SUCCESS/FAILURE):\n%s", runErr, lastLines(res.Output, 20))
	}
	return res, nil
}

func eapolConfig(cfg EAPTLS) string {
	disable13 := 1
	if cfg.TLS13 {
		disable13 = 0
	}
	return fmt.Sprintf(`network={
	key_mgmt=IEEE8021X
	eap=TLS
	identity=%q
	ca_cert=%q
	client_cert=%q
	private_key=%q
	phase1="tls_disable_tlsv1_3=%d"
	eapol_flags=0
}
`, cfg.Identity, cfg.CACert, cfg.ClientCert, cfg.PrivateKey, disable13)
}

var (
	mppeRE  = regexp.MustCompile(`MPPE keys OK: (\d+)\s+mismatch: (\d+)`)
	tlsRE   = regexp.MustCompile(`SSL: Using TLS version (\S+)`)
	radMsg  = regexp.MustCompile(`^RADIUS message: code=(\d+) \(([^)]*)\)`)
	attrRE  = regexp.MustCompile(`^\s+Attribute \d+ \(([^)]*)\) length=(\d+)`)
	valueRE = regexp.MustCompile(`^\s+Value: (.*)$`)
)

// parseEAPOLTest extracts the outcome from eapol_test's output.
func parseEAPOLTest(out string) EAPResult {
	res := EAPResult{Output: out}
	if m := mppeRE.FindStringSubmatch(out); m != nil {
		res.MPPEOK, _ = strconv.Atoi(m[1])
		res.MPPEMismatch, _ = strconv.Atoi(m[2])
	}
	if m := tlsRE.FindAllStringSubmatch(out, -1); m != nil {
		res.TLSVersion = m[len(m)-1][1]
	}
	var (
		final   bool   // inside an Access-Accept/Reject dump
		request bool   // inside an Access-Request dump
		eapLen  int    // EAP-Message bytes of the current request
		attr    string // attribute awaiting its Value line
		last    string
	)
	endRequest := func() {
		if request && eapLen > 1000 {
			res.RequestFragments++
		}
		request, eapLen = false, 0
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if t := strings.TrimSpace(line); t != "" {
			last = t
		}
		if m := radMsg.FindStringSubmatch(line); m != nil {
			endRequest()
			final, attr = false, ""
			switch m[1] {
			case "1":
				request = true
			case "2", "3":
				final = true
				res.Attrs = map[string][]string{}
			case "11":
				res.Challenges++
			}
			continue
		}
		if m := attrRE.FindStringSubmatch(line); m != nil {
			attr = ""
			if request && m[1] == "EAP-Message" {
				n, _ := strconv.Atoi(m[2])
				eapLen += n - 2
			}
			if final {
				attr = m[1]
			}
			continue
		}
		if m := valueRE.FindStringSubmatch(line); m != nil && attr != "" {
			v := m[1]
			if len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' {
				v = v[1 : len(v)-1]
			}
			res.Attrs[attr] = append(res.Attrs[attr], v)
			attr = ""
			continue
		}
		if !strings.HasPrefix(line, " ") {
			endRequest()
			final, attr = false, ""
		}
	}
	endRequest()
	res.Success = last == "SUCCESS"
	return res
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
