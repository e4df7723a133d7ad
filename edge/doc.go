// Package edge is the appliance: it turns a config into running listeners,
// upstream pools and stores, owns signals, reload and shutdown, and holds the
// router that decides, once per request and in one place, which path a
// request takes (federation pool, cloud pool, or the local NAC).
//
// It is where the proxy (the wire), the cache and the cloud link meet;
// those packages know nothing of each other.
package edge
