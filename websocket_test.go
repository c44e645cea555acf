package sessionauth

import (
	"net/http"
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
