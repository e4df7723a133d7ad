package config

import "testing"

func TestIsLocal(t *testing.T) {
	const file = `
radius:
  auth_listen: [":1812"]
  clients:
    - {address: 192.0.2.0/24, secret: "0123456789abcdef"}
survivability:
  default_mab_vlan: "41"
  crl: []
`
	t.Setenv("MXEDGE_SURVIVABILITY_ENABLED", "false")
	c, err := Parse("t.yaml", []byte(file))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		key  string
		want bool
	}{
		{"radius", true},
		{"radius.clients", true},
		{"radius.acct_listen", false},
		{"survivability", true},
		{"survivability.default_mab_vlan", true},
		{"survivability.crl", true},     // written empty: still the file's
		{"survivability.enabled", true}, // from the environment
		{"survivability.default_dot1x_vlan", false},
		{"survivability.org_ca", false},
		{"federation", false},
		{"cloud", false},
	}
	for _, tt := range tests {
		if got := c.IsLocal(tt.key); got != tt.want {
			t.Errorf("IsLocal(%q) = %v, want %v", tt.key, got, tt.want)
		}
	}
	if Default().IsLocal("radius") {
		t.Error("Default() has local keys")
	}
}
