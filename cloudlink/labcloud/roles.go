package labcloud

import "github.com/mxedge/mxedge/cloudlink"

// MABRole is the role the lab NAC gives every MAB accept.
const MABRole = "lab-mab"

// RoleAttribute is how a device of vendor (the edge's client vendor, sent
// in its vendor-specific attribute, docs/cloud-api.md) is told a role:
// Cisco-AVPair "shell:roles=…" for cisco, Aruba-User-Role for aruba,
// Filter-Id for everything else. This is the lab's stand-in for the
// cloud's "attributes based on the configured vendor".
func RoleAttribute(vendor, role string) cloudlink.Attribute {
	switch vendor {
	case "cisco":
		return cloudlink.Attribute{Name: "Cisco-AVPair", Type: 26, VendorID: 9, VendorType: 1, Value: "shell:roles=" + role}
	case "aruba":
		return cloudlink.Attribute{Name: "Aruba-User-Role", Type: 26, VendorID: 14823, VendorType: 1, Value: role}
	}
	return cloudlink.Attribute{Name: "Filter-Id", Type: 11, Value: role}
}
