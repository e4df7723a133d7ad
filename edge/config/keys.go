package config

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Keys are matched as written: viper folds case and reads a literal
// "log.level" key as the path log → level, so `LOG: {Level: debug}` and a
// dotted key that silently overrides the `log:` map would both be
// accepted. checkKeys reads the raw YAML first and refuses both, naming
// the key to write instead.

// checkKeys reports mapping keys that are not lower case or that contain
// a dot, by their path in the file. A file that does not parse is left to
// viper, whose message says where.
func checkKeys(name string, data []byte) Errors {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil
	}
	p := newProblems(name, nil)
	walkKeys(p, "", &doc)
	return p.errs
}

func walkKeys(p *problems, path string, n *yaml.Node) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			walkKeys(p, path, c)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			walkKeys(p, fmt.Sprintf("%s[%d]", path, i), c)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i].Value, n.Content[i+1]
			key := join(path, keyName(k))
			switch {
			case strings.Contains(k, "."):
				parts := strings.Split(k, ".")
				p.add(join(path, strconv.Quote(k)), fmt.Sprintf("a dotted key is not a path: nest it as %s: then %s:", parts[0], strings.Join(parts[1:], ".")))
				continue
			case k != strings.ToLower(k):
				p.add(key, fmt.Sprintf("keys are case-sensitive: write %s", strings.ToLower(k)))
				continue
			}
			walkKeys(p, key, v)
		}
	}
}

// otherEnv are MXEDGE_* variables that are not config keys but are read
// elsewhere, so they are not reported as unknown.
var otherEnv = []string{
	"MXEDGE_LIBCRYPTO",    // edge/internal/libcrypto: "off" signs in Go
	"MXEDGE_BIN",          // the binary cmd/mxedge's tests run (make test)
	"MXEDGE_LABPKI_CACHE", // where the lab PKI of the tests is kept
}

// unknownEnv warns about MXEDGE_* variables that override no key: a
// misspelt MXEDGE_LOG_LEVL=debug would otherwise do nothing, silently.
// A warning, not an error: the environment is shared with other tools,
// and a stray variable must not stop a restart.
func unknownEnv(p *problems, environ []string) {
	known := map[string]bool{}
	for _, key := range envKeys() {
		known[EnvName(key)] = true
	}
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "MXEDGE_") || known[name] || slices.Contains(otherEnv, name) {
			continue
		}
		p.warn("$"+name, "not a config variable: it sets nothing (variables are MXEDGE_ + the key upper-cased with dots as underscores, e.g. MXEDGE_LOG_LEVEL)")
	}
}

// StateDir is the state directory a file names, read leniently: the
// rest of the file may be invalid. `mxedge status` and `mxedge cache` need
// nothing else to reach the daemon, which an operator wants most exactly
// when the file on disk has just been broken. MXEDGE_STATE_DIR wins, as
// for Load; a file without a usable state_dir gives the default.
func StateDir(data []byte) string {
	if d, ok := os.LookupEnv(EnvName("state_dir")); ok && filepath.IsAbs(d) {
		return d
	}
	var doc struct {
		StateDir any `yaml:"state_dir"`
	}
	if yaml.Unmarshal(data, &doc) == nil {
		if d, ok := doc.StateDir.(string); ok && filepath.IsAbs(d) {
			return d
		}
	}
	return Default().StateDir
}

// Keys lists every key of the configuration as a dotted path; keys of
// list entries read "radius.clients[].secret".
func Keys() []string { return typeKeyList("", reflect.TypeFor[Config]()) }

func typeKeyList(prefix string, t reflect.Type) []string {
	var keys []string
	for _, f := range reflect.VisibleFields(t) {
		name := f.Tag.Get("yaml")
		if name == "" || !f.IsExported() {
			continue
		}
		key := join(prefix, name)
		switch {
		case f.Type.Kind() == reflect.Struct && !isScalar(f.Type):
			keys = append(keys, typeKeyList(key, f.Type)...)
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
			keys = append(keys, typeKeyList(key+"[]", f.Type.Elem())...)
		default:
			keys = append(keys, key)
		}
	}
	return keys
}

// Refused maps each key that is refused when set to the reason: the
// feature behind it is not built yet.
func Refused() map[string]string { return refusedIn("", reflect.TypeFor[Config]()) }

func refusedIn(prefix string, t reflect.Type) map[string]string {
	m := map[string]string{}
	for _, f := range reflect.VisibleFields(t) {
		name := f.Tag.Get("yaml")
		if name == "" || !f.IsExported() {
			continue
		}
		key := join(prefix, name)
		switch {
		case f.Tag.Get("refused") != "":
			m[key] = f.Tag.Get("refused")
		case f.Type.Kind() == reflect.Struct && !isScalar(f.Type):
			maps.Copy(m, refusedIn(key, f.Type))
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
			maps.Copy(m, refusedIn(key+"[]", f.Type.Elem()))
		}
	}
	return m
}
