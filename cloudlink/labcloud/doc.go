// Package labcloud is a LAB stand-in for the cloud NAC: the edge API of
// docs/cloud-api.md and a MAB-only RadSec NAC, with state in JSON files.
// cmd/mxcloud runs it on loopback for demos and integration tests, and the
// cloudlink tests run the real client against it, so client and server are
// held to one contract. It is not a product: no rate limits, no
// multi-tenant isolation, whole-state rewrites on each change.
package labcloud
