// Package load is the in-repo RADIUS load generator behind `make bench` and
// the integration tests' request streams: MAB Access-Requests with a
// Message-Authenticator from a fixed number of workers, each with its own
// UDP socket, bounded in count and time, with latencies and losses counted.
package load
