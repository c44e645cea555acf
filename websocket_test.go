package sessionauth

import (
	"net/http"
	"strings"
	"testing"
)

// Only upgrades are wrapped for tracking: a plain request's writer goes
// to the upstream as it came, whatever its headers say otherwise.
func TestOnlyUpgradesAreTracked(t *testing.T) {
	h, _ := testHandler(t, nil)
	c := signIn(t, h, "wes")
	var tracked bool
	up := &upstream{respond: func(w http.ResponseWriter, r *http.Request) {
		_, tracked = w.(*interceptor).ResponseWriter.(*socketWriter)
	}}
	for _, tc := range []struct {
		name        string
		header      []string
		wantTracked bool
	}{
		{"plain", nil, false},
		{"upgrade without Connection", []string{"Upgrade", "websocket"}, false},
		{"websocket", []string{"Connection", "keep-alive, Upgrade", "Upgrade", "websocket"}, true},
	} {
		r := get("/ws", c)
		for i := 0; i+1 < len(tc.header); i += 2 {
			r.Header.Set(tc.header[i], tc.header[i+1])
		}
		tracked = false
		if w := serve(t, h, r, up); w.Code != 200 || tracked != tc.wantTracked {
			t.Errorf("%s: %d, tracked %v", tc.name, w.Code, tracked)
		}
	}
	if n := len(sockets.bySession); n != 0 {
		t.Errorf("%d sessions with sockets after requests that hijacked nothing", n)
	}
}

// An upgrade registered just after its session ended (the store read it
// as active, the end was heard before the registration) is closed at once
// and answered as any request of an ended session: the ids of recently
// ended sessions are remembered.
func TestUpgradeRegisteredAfterItsEndIsClosed(t *testing.T) {
	h, _ := testHandler(t, nil)
	c := signIn(t, h, "wes")
	id, _, _ := strings.Cut(c.Value, ".")
	sockets.closeSessions(id) // the end, heard after the store's read
	var cancelled error
	up := &upstream{respond: func(w http.ResponseWriter, r *http.Request) {
		cancelled = r.Context().Err()
		w.Header().Set("Upgrade", "websocket")
		w.WriteHeader(http.StatusSwitchingProtocols)
	}}
	r := get("/ws", c)
	r.Header.Set("Connection", "Upgrade")
	r.Header.Set("Upgrade", "websocket")
	if w := serve(t, h, r, up); w.Code != http.StatusUnauthorized || cancelled == nil {
		t.Fatalf("answered %d, request to the upstream cancelled: %v", w.Code, cancelled)
	}
	sockets.mu.Lock()
	defer sockets.mu.Unlock()
	if n := len(sockets.bySession[id]); n != 0 {
		t.Errorf("%d sockets still tracked", n)
	}
}
