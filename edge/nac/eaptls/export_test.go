package eaptls

// Done exposes the handshake goroutine's exit to the external tests.
func Done(s *Session) <-chan struct{} { return s.done() }
