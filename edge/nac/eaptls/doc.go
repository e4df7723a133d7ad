// Package eaptls is the EAP-TLS server (RFC 5216, TLS 1.2; RFC 9190,
// TLS 1.3) of mxedge's local authenticator, used while the WAN is down.
//
// It speaks pure EAP: Session.Handle takes one reassembled EAP-Response and
// returns the next EAP packet (Request, Success or Failure) with an Outcome
// and, at the end, a Result carrying the MSK/EMSK, the verified client chain
// and a Reason. RADIUS framing (EAP-Message chunks, State,
// Message-Authenticator, MPPE attribute encryption) belongs to the caller.
//
// The TLS work is crypto/tls itself, run on one goroutine per conversation
// against an in-memory net.Conn: a Read that finds no input marks the end
// of a flight (see engine). Client certificates are checked in
// VerifyConnection against a Trust (org roots, intermediates, CRLs verified
// once at load) with the injected clock, so each failure gets its own
// Reason for the NAC events. Password methods are refused: the cloud has the
// passwords, the edge does not.
//
// Flow for the caller:
//
//	s := srv.NewSession(fragmentSize)       // first Access-Request, no State
//	state, err := table.Add(callingStationID, s)
//	reply := s.Handle(eapMessage)           // later: table.Get(state, callingStationID)
//	switch reply.Outcome { Challenge: Access-Challenge+State; Accept: Access-Accept with
//	    reply.Result.Keys.MPPERecvKey()/MPPESendKey(); Reject: Access-Reject; Discard: drop }
package eaptls
