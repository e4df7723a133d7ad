// Package coa relays Change-of-Authorization and Disconnect requests
// (RFC 5176) from a Dynamic Authorization Client (the cloud, over RadSec)
// to the device that holds the session, over UDP on the device's CoA port,
// signed with that device's secret, and carries the ACK or NAK back.
//
// The relay acts as the RFC's RADIUS proxy: it locates the device by the
// request's NAS identification attributes, enforces the Event-Timestamp
// replay window, and answers with a NAK and an Error-Cause when it cannot
// deliver the request (unknown target, device silent). What a device is
// called and which secret it has is the caller's (Directory); this package
// knows nothing of configuration files or clouds.
package coa
