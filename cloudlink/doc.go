// Package cloudlink is mxedge's link to the cloud's edge API: registration
// with a one-time code, config pull, cache sync and event upload.
//
// The API is versioned JSON over HTTPS (docs/cloud-api.md); its types live
// here so that the edge and the lab cloud (cmd/mxcloud) cannot drift apart.
// After registration every call authenticates with the issued client
// certificate, so the registration files under the state directory are the
// edge's identity: Register writes them, LoadRegistration reads them.
//
// The Syncer runs the periodic work in the background. It only ever talks
// to the cache store and the network, never to the RADIUS path, so a slow
// or unreachable cloud cannot delay an authentication: it backs off and
// tries again, and the cache keeps serving what it last committed.
package cloudlink
