// Package proxy is everything mxedge does on the wire: RADIUS from
// third-party devices over UDP (package proxy/udp), RadSec links to the
// cloud and from managed devices (proxy/radsec), the packet helpers both use
// (proxy/packet), and, here, the types they share and the Forwarder that
// carries a device's request to an upstream and the answer back.
//
// It knows nothing of caches, clouds or routing policy: the edge package
// decides where a request goes and hands the proxy an upstream to use.
package proxy
