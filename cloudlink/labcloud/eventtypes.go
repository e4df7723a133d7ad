package labcloud

// EventTypes counts the distinct events the lab cloud holds by type, so
// a test can check that an edge reported a kind of event (say, its mode
// changes) without knowing the events' identifiers.
func (c *Cloud) EventTypes() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for _, ev := range c.st.Events {
		out[ev.Type]++
	}
	return out
}
