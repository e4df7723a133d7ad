// Command mxcloud is a LAB cloud for mxedge demos and tests: the edge API
// (registration, config, cache sync, events) and a RadSec NAC (MAB, EAP-TLS
// against the org CA), on loopback only. It is not the cloud NAC and must
// not be run as one.
//
// The work is in packages: the edge API in cloudlink/labcloud, so that the
// cloudlink tests exercise the real client against the same server; the
// NAC in cmd/internal/labnac. serve parses flags, binds loopback listeners,
// wires labcloud and labnac behind them and prints a readiness line; the
// admin subcommands call the running serve's loopback admin API; demo runs
// serve in-process and drives the built mxedge binary, and the third-party
// peers of cmd/internal/peers, against it.
package main
