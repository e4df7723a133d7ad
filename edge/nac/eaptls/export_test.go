package eaptls

// Done exposes the handshake goroutine's exit to the external tests.
func Done(s *Session) <-chan struct{} { return s.done() }

// VerifiedLen is the number of chains in t's verified-chain cache.
func VerifiedLen(t *Trust) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.verified)
}

// SetMaxVerified lowers t's cache bound for a test.
func SetMaxVerified(t *Trust, n int) { t.maxVerified = n }
