package labcloud

import (
	"encoding/json"
	"maps"
	"net/http/httptest"
	"testing"

	"github.com/mxedge/mxedge/cloudlink"
)

func TestEventTypes(t *testing.T) {
	c := mustCloud(t)
	c.mu.Lock()
	for id, typ := range map[string]string{"a": "NAC Edge Mode Changed", "b": "NAC Edge Mode Changed", "c": "NAC Client Access Allowed"} {
		c.st.Events[id] = cloudlink.Event{ID: id, Type: typ}
	}
	c.mu.Unlock()
	want := map[string]int{"NAC Edge Mode Changed": 2, "NAC Client Access Allowed": 1}
	if got := c.EventTypes(); !maps.Equal(got, want) {
		t.Errorf("EventTypes() = %v, want %v", got, want)
	}
	for _, tc := range []struct {
		remote string
		status int
	}{{"127.0.0.1:1", 200}, {"192.0.2.1:1", 403}} {
		r := httptest.NewRequest("GET", "/lab/v1/event-types", nil)
		r.RemoteAddr = tc.remote
		w := httptest.NewRecorder()
		c.Handler().ServeHTTP(w, r)
		if w.Code != tc.status {
			t.Errorf("from %s: status %d, want %d", tc.remote, w.Code, tc.status)
			continue
		}
		var got map[string]int
		if tc.status == 200 && (json.Unmarshal(w.Body.Bytes(), &got) != nil || !maps.Equal(got, want)) {
			t.Errorf("from %s: %s", tc.remote, w.Body)
		}
	}
}
