// Package load is the in-repo RADIUS load generator behind `make bench` and
// the integration tests' request streams.
//
// RunLoad measures throughput: MAB Access-Requests with a
// Message-Authenticator from a fixed number of workers, each with its own
// UDP socket and one request in flight, bounded in count and time, with
// latencies and losses counted.
//
// Switch behaves like an access switch's RADIUS client instead, for
// failover tests: a paced MAB stream whose requests run concurrently, each
// retransmitted after a timeout up to a number of tries, plus accounting
// with Acct-Delay-Time raised on each retransmission. Every request's
// fate (which try was answered, by what) is recorded so a test can tell
// what a WAN cut cost.
package load
