package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessionauth/caddy-sessionauth/internal/redisserver"
	"github.com/sessionauth/caddy-sessionauth/session"
)

// metricValue reads one sample from the admin /metrics; 0 when absent.
func (g *gateway) metricValue(sample string) float64 {
	g.t.Helper()
	code, body := g.adminDo("GET", "/metrics", "")
	if code != 200 {
		g.t.Fatalf("/metrics: %d", code)
	}
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

// hangingHook is a webhook that holds every call until released, then
// records the session of each notice.
type hangingHook struct {
	addr     string
	release  chan struct{}
	mu       sync.Mutex
	sessions map[string]bool
}

func newHangingHook(t *testing.T) *hangingHook {
	hk := &hangingHook{release: make(chan struct{}), sessions: map[string]bool{}}
	hk.addr = serveLocal(t, hk)
	return hk
}

func (hk *hangingHook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	<-hk.release
	var n map[string]string
	body, _ := io.ReadAll(r.Body)
	_ = json.Unmarshal(body, &n)
	hk.mu.Lock()
	hk.sessions[n["session_id"]] = true
	hk.mu.Unlock()
}

func (hk *hangingHook) received() int {
	hk.mu.Lock()
	defer hk.mu.Unlock()
	return len(hk.sessions)
}

// With the webhook hanging, more notices than the outbox holds: every
// notice is delivered once the webhook answers, or was counted (and
// logged) as dropped when it could not be queued; none vanish.
func TestOutboxNeverDropsSilently(t *testing.T) {
	prev := session.OutboxCap
	session.OutboxCap = 40
	t.Cleanup(func() { session.OutboxCap = prev }) // after Caddy stops
	stores(t, func(t *testing.T, store string, _ *redisserver.Server) {
		hk := newHangingHook(t)
		g := loadCaddy(t, site(store+fmt.Sprintf("\nmax_sessions 0\nnotify http://%s/hook {\n events new_login\n }", hk.addr)), newUpstream(t))
		user := "outbox-" + randomID()
		body := `{"user_id":"` + user + `"}`
		if code, res := g.adminDo("POST", "/session-auth/sessions", body); code != 201 {
			t.Fatalf("mint: %d %s", code, res)
		}
		const notices = 250 // each sign-in while another is active: new_login
		for i := 0; i < notices; i++ {
			if code, res := g.adminDo("POST", "/session-auth/sessions", body); code != 201 {
				t.Fatalf("mint %d: %d %s", i, code, res)
			}
		}
		dropped := int(g.metricValue(`caddy_session_auth_notifications_total{result="dropped"}`))
		if dropped < notices-session.OutboxCap {
			t.Fatalf("%d notices counted as dropped with a queue of %d for %d", dropped, session.OutboxCap, notices)
		}
		close(hk.release)
		waitUntil(t, 30*time.Second, func() bool { return hk.received()+dropped >= notices })
		if got := hk.received(); got+dropped != notices {
			t.Fatalf("%d delivered + %d dropped, of %d notices", got, dropped, notices)
		}
	})
}
