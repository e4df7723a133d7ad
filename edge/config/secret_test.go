package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

const plain = "s3cr3t-sh4red-v4lue"

func TestSecretRedacted(t *testing.T) {
	s := Secret(plain)
	c := Client{Name: "core", Secret: s}
	cfg := Default()
	cfg.RADIUS.Clients = []Client{c}
	cfg.Federation = []Federation{{Name: "f", AuthServers: []Server{{Address: "192.0.2.1:1812", Secret: s}}}}

	var text, js bytes.Buffer
	slog.New(slog.NewTextHandler(&text, nil)).Info("x", "secret", s, "client", c, "config", cfg)
	slog.New(slog.NewJSONHandler(&js, nil)).Info("x", "secret", s, "client", c, "config", cfg)
	marshalled, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}

	outputs := map[string]string{
		"slog text": text.String(),
		"slog json": js.String(),
		"json":      string(marshalled),
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10.3s"} {
		outputs[verb] = fmt.Sprintf(verb, s)
		outputs[verb+" client"] = fmt.Sprintf(verb, c)
		outputs[verb+" *client"] = fmt.Sprintf(verb, &c)
		outputs[verb+" config"] = fmt.Sprintf(verb, *cfg)
	}
	outputs["String"] = s.String()
	outputs["GoString"] = s.GoString()
	outputs["Sprint"] = fmt.Sprint(s, &s)
	hex := fmt.Sprintf("%x", plain)
	for name, out := range outputs {
		if strings.Contains(out, plain) || strings.Contains(out, hex) {
			t.Errorf("%s leaks the secret: %s", name, out)
		}
		if !strings.Contains(out, "[redacted]") {
			t.Errorf("%s does not say [redacted]: %s", name, out)
		}
	}
}

func TestSecretReveal(t *testing.T) {
	if got := string(Secret(plain).Reveal()); got != plain {
		t.Errorf("Reveal() = %q, want %q", got, plain)
	}
	// Reveal hands out a copy: the caller may scrub it.
	s := Secret(plain)
	b := s.Reveal()
	clear(b)
	if string(s.Reveal()) != plain {
		t.Error("clearing Reveal's result changed the secret")
	}
}
