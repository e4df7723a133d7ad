// Package dedup is the duplicate-request cache of RFC 5080 §2.2.2 for the
// plain RADIUS listeners.
//
// A NAS retransmits a request byte for byte, with the same identifier and
// Request Authenticator, when it has not heard back. Forwarding each copy
// would multiply upstream load exactly when the upstream is slow, and
// answering each copy separately could give the NAS two different answers.
// So a retransmission of a request still being handled is dropped, and one
// of a request already answered gets the cached reply again. A request that
// reuses the identifier with a new authenticator is a new request: the NAS
// has given up on the old one, so the old one's reply, when it comes, is
// neither sent nor cached.
//
// Memory is bounded by an entry count and by bytes (each reply plus a
// fixed overhead per entry): a client that knows its secret could
// otherwise fill every entry with a 4 KiB reply echoing a large
// Proxy-State. Entries sit on a list in the order they were last touched,
// so expiry takes the oldest from the front without scanning the map.
// Each source address is charged for its entries and keeps its own list
// in the same order; when the cache is full, room is made by evicting the
// oldest entries of the source charged the most, so a flood from one
// client evicts its own answers before anyone else's. Slots live in one slice linked by index
// and the map holds no pointers, which keeps the garbage collector from
// walking a large cache.
package dedup
