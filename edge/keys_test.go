package edge

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/mxedge/mxedge/edge/config"
)

// No key is accepted that does nothing. TestEveryKeyActs walks every key
// of the configuration (config.Keys: the same list TestExample holds
// config.example.yaml to) and wants each one either refused when set
// (config.Refused: the feature is not built) or read by the function
// this table names, which is where it changes the daemon's behaviour.
// The test parses the daemon's source and checks that the function
// exists and reads the key's field; a new key with no consumer, or a
// consumer that stops reading it, fails here.
var keyConsumers = map[string]string{
	"state_dir":                "edge.Start",
	"log.level":                "edge.newLogger",
	"log.format":               "edge.newLogger",
	"metrics.listen":           "edge.listen",
	"metrics.console":          "edge.consoleHandler",
	"metrics.token_file":       "config.ConsoleTokenFile",
	"metrics.https":            "edge.startObservability",
	"metrics.tls_cert":         "config.MetricsTLS",
	"metrics.tls_key":          "config.MetricsTLS",
	"radius.auth_listen":       "edge.listen",
	"radius.acct_listen":       "edge.listen",
	"radius.duplicate_window":  "edge.listen",
	"radius.clients[].name":    "edge.buildClients",
	"radius.clients[].address": "edge.buildClients",
	"radius.clients[].secret":  "edge.buildClients",
	"radius.clients[].vendor":  "edge.buildClients",
	"radius.clients[].site":    "edge.buildClients",
	"radius.clients[].require_message_authenticator":            "edge.buildClients",
	"radius.clients[].limit_proxy_state":                        "edge.buildClients",
	"radsec.listen":                                             "edge.startRadSec",
	"radsec.cert":                                               "edge.loadRadSecTrust",
	"radsec.key":                                                "edge.loadRadSecTrust",
	"radsec.client_ca":                                          "edge.loadRadSecTrust",
	"survivability.reauthorize_after_outage":                    "edge.newReauth",
	"radius.clients[].coa_port":                                 "edge.coaTarget",
	"radius.clients[].coa_require_message_authenticator":        "edge.coaTarget",
	"radius.clients[].coa_disable_event_timestamp_check":        "edge.coaTarget",
	"radsec.allowed_subjects":                                   "edge.loadRadSecTrust",
	"radsec.sites[].match":                                      "edge.identify",
	"radsec.sites[].site":                                       "edge.identify",
	"radsec.handshake_timeout":                                  "edge.startRadSec",
	"radsec.idle_timeout":                                       "edge.startRadSec",
	"radsec.max_connections":                                    "edge.startRadSec",
	"radsec.max_connections_per_source":                         "edge.startRadSec",
	"radsec.max_inflight_per_connection":                        "edge.startRadSec",
	"cloud.api_url":                                             "edge.startCloudLinkSyncer",
	"cloud.radsec.servers":                                      "edge.cloudRadSec",
	"cloud.radsec.ca":                                           "edge.cloudTLS",
	"cloud.radsec.cert":                                         "edge.cloudTLS",
	"cloud.radsec.key":                                          "edge.cloudTLS",
	"cloud.radsec.server_name":                                  "edge.cloudTLS",
	"cloud.radsec.timeout":                                      "edge.newCloudPool",
	"cloud.radsec.idle_timeout":                                 "edge.newCloudPool",
	"cloud.radsec.status_interval":                              "edge.newCloudPool",
	"cloud.proxy_url":                                           "edge.startCloudLinkSyncer",
	"cloud.sync_interval":                                       "edge.startCloudLinkSyncer",
	"cloud.learn_from_accepts":                                  "edge.startLearning",
	"cloud.caching_site_ids":                                    "edge.startCloudLinkSyncer",
	"survivability.enabled":                                     "edge.startLocal",
	"survivability.mode":                                        "edge.startLocal",
	"survivability.cache_ttl_days":                              "config.CacheTTL",
	"survivability.max_entries":                                 "edge.openCache",
	"survivability.default_mab_vlan":                            "edge.newLocal",
	"survivability.default_dot1x_vlan":                          "edge.newLocal",
	"survivability.org_ca":                                      "edge.newLocal",
	"survivability.crl":                                         "edge.newLocal",
	"survivability.eap_cert":                                    "edge.newLocal",
	"survivability.eap_key":                                     "edge.newLocal",
	"survivability.fragment_size":                               "edge.newLocal",
	"survivability.fallback_after":                              "edge.Start",
	"survivability.local_session_timeout":                       "edge.newLocal",
	"survivability.local_session_jitter":                        "edge.newLocal",
	"survivability.accounting_store":                            "edge.openCache",
	"survivability.events_durable":                              "edge.newLocal",
	"survivability.health.probe_interval":                       "edge.run",
	"survivability.health.probe_timeout":                        "edge.round",
	"survivability.health.down_after":                           "edge.setConfig",
	"survivability.health.up_after":                             "edge.setConfig",
	"federation[].name":                                         "edge.buildRoute",
	"federation[].ssids":                                        "edge.buildRoute",
	"federation[].exclude_realms":                               "edge.buildRoute",
	"federation[].operator_name":                                "edge.buildRoute",
	"federation[].load_balance":                                 "edge.buildRoute",
	"federation[].fticks":                                       "edge.observe",
	"federation[].country":                                      "edge.observe",
	"federation[].timeout":                                      "edge.buildRoute",
	"federation[].retries":                                      "edge.buildRoute",
	"federation[].status_interval":                              "edge.buildRoute",
	"federation[].auth_servers[].address":                       "edge.buildRoute",
	"federation[].auth_servers[].secret":                        "edge.buildRoute",
	"federation[].auth_servers[].require_message_authenticator": "edge.buildRoute",
	"federation[].acct_servers[].address":                       "edge.buildRoute",
	"federation[].acct_servers[].secret":                        "edge.buildRoute",
	"federation[].acct_servers[].require_message_authenticator": "edge.buildRoute",
}

func TestEveryKeyActs(t *testing.T) {
	reads := selectorsByFunc(t, ".", "config")
	refused := config.Refused()
	for _, key := range config.Keys() {
		if why, ok := refused[key]; ok {
			if _, listed := keyConsumers[key]; listed {
				t.Errorf("%s is refused (%s) but has a consumer in the table", key, why)
			}
			continue
		}
		fn, ok := keyConsumers[key]
		if !ok {
			t.Errorf("%s: no consumer: a key that changes nothing must be refused (a refused:\"…\" tag) or wired in, and named here", key)
			continue
		}
		field := fieldName(t, key)
		sel, ok := reads[fn]
		if !ok {
			t.Errorf("%s: consumer %s does not exist", key, fn)
			continue
		}
		if !slices.Contains(sel, field) {
			t.Errorf("%s: consumer %s does not read .%s", key, fn, field)
		}
	}
	for key := range keyConsumers {
		if !slices.Contains(config.Keys(), key) {
			t.Errorf("table names %s, which is not a key", key)
		}
	}
}

// fieldName is the Go field behind a dotted key.
func fieldName(t *testing.T, key string) string {
	typ := reflect.TypeFor[config.Config]()
	var name string
	for _, part := range strings.Split(key, ".") {
		part = strings.TrimSuffix(part, "[]")
		f, ok := fieldByTag(typ, part)
		if !ok {
			t.Fatalf("%s: no field for %s", key, part)
		}
		name, typ = f.Name, f.Type
		if typ.Kind() == reflect.Slice {
			typ = typ.Elem()
		}
	}
	return name
}

func fieldByTag(typ reflect.Type, tag string) (reflect.StructField, bool) {
	for _, f := range reflect.VisibleFields(typ) {
		if f.Tag.Get("yaml") == tag {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// selectorsByFunc maps "pkg.Func" (methods by their name) to the selector
// names its body uses, for the non-test files of the given directories.
func selectorsByFunc(t *testing.T, dirs ...string) map[string][]string {
	m := map[string][]string{}
	fset := token.NewFileSet()
	for _, dir := range dirs {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, file := range files {
			if strings.HasSuffix(file, "_test.go") {
				continue
			}
			src, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			f, err := parser.ParseFile(fset, file, src, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range f.Decls {
				fd, ok := d.(*ast.FuncDecl)
				if !ok || fd.Body == nil {
					continue
				}
				name := f.Name.Name + "." + fd.Name.Name
				ast.Inspect(fd.Body, func(n ast.Node) bool {
					if s, ok := n.(*ast.SelectorExpr); ok {
						m[name] = append(m[name], s.Sel.Name)
					}
					return true
				})
				if _, ok := m[name]; !ok {
					m[name] = nil
				}
			}
		}
	}
	return m
}
