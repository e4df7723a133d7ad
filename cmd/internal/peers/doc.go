// Package peers runs the real third-party RADIUS peers the integration tests
// and benchmarks talk to: FreeRADIUS (home server with a RadSec listener and
// optional plain UDP listeners), radsecproxy (UDP→RadSec yardstick),
// radclient (a third-party switch) and eapol_test (an EAP-TLS supplicant).
//
// Nothing here is a mock: each runner writes its own config into a private
// directory, starts the Debian binary on free loopback ports, waits for a
// readiness signal the process itself gives (a log line or an answered
// request, never a sleep), and stops it by PID. The system services and the
// well-known ports 1812/1813/2083 are never touched.
package peers
