// Command mxcloud is a LAB cloud for mxedge demos and tests: the edge API
// (registration, config, cache sync, events) and a MAB RadSec NAC, on
// loopback only. It is not the cloud NAC and must not be run as one.
//
// The API and NAC live in package cloudlink/labcloud so that the cloudlink
// tests exercise the real client against the same server; this command
// only parses flags, binds loopback listeners and prints a readiness line.
package main
