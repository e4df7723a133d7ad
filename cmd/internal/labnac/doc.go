// Package labnac is the lab cloud's RadSec NAC, the RADIUS side of mxcloud
// serve (and so of mxcloud demo, which runs it): MAB decided by the lab
// cloud's allow-list, EAP-TLS by the edge's own authenticator (edge/nac)
// against the org CA, accounting acknowledged, everything else rejected.
//
// It is LAB only, for demos and tests: it is not the cloud NAC. It lives
// here, not in cmd/mxcloud, so that the command stays thin (flags,
// listeners, wiring) and the NAC is a package with its own tests; and not
// in cloudlink/labcloud, which is cloudlink's side and knows no RADIUS.
package labnac
