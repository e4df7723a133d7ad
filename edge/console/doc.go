// Package console is the edge's read-only web console: the pages a site's
// network team opens when the cloud's dashboards are out of reach (mode and
// uplink health, recent NAC decisions, one client's cached entry, RADIUS
// devices and RadSec connections), and a JSON endpoint beside each page
// with the same data.
//
// It is served on the metrics listener. Pages are rendered on the server
// with html/template and work without scripts; a small same-origin script
// only adds live updates to the decisions list. Off loopback every page
// and endpoint asks for a token (Auth), which lives in a file under the
// state directory.
//
// The console owns no state of the daemon: a Source (declared here, filled
// by package edge) answers for the mode, the cache and the devices, and a
// Recorder keeps the last decisions in memory, fed by the local NAC and the
// router.
package console
