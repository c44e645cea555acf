package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// The SPEC's metrics, on Caddy's admin /metrics, with bounded labels.
func TestMetricsOnAdminEndpoint(t *testing.T) {
	g := loadCaddy(t, site("store memory\nguess_rate 1 1m"), newUpstream(t))
	c := newClient(t, g)
	c.signIn("mia")
	c.do("GET", "/")
	newClient(t, g).do("GET", "/", "Cookie", "session=garbage", "X-Forwarded-For", "203.0.113.1")
	newClient(t, g).do("GET", "/", "Cookie", "session=garbage", "X-Forwarded-For", "203.0.113.1") // over guess_rate
	c.do("POST", "/.auth/logout")
	code, body := g.adminDo("GET", "/metrics", "")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{
		`caddy_session_auth_requests_total{outcome="authenticated"}`,
		`caddy_session_auth_requests_total{outcome="invalid"}`,
		"caddy_session_auth_logins_total",
		"caddy_session_auth_logouts_total",
		`caddy_session_auth_store_duration_seconds_bucket{op="validate"`,
		`caddy_session_auth_store_duration_seconds_count{op="create"}`,
		`caddy_session_auth_rate_limited_total{limit="guess"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "caddy_session_auth") && (strings.Contains(line, "mia") || strings.Contains(line, "127.0.0.1")) {
			t.Errorf("a metric label holds a user or an IP: %s", line)
		}
	}
}

// Every metric survives any number of reloads, and keeps moving: each
// config load has its own registry, and nothing may keep counting into
// a dropped one (the notification sender once did).
func TestMetricsSurviveReloads(t *testing.T) {
	rc := newReceiver(t, 0, "")
	up := newUpstream(t)
	options := "store memory\nmax_sessions 0\ntouch_interval 1ms\nguess_rate 1 1m\n" +
		"notify http://" + rc.addr + "/hook {\n secret hook-secret\n events new_login revoke\n }"
	g := loadCaddy(t, site(options), up)
	text := strings.NewReplacer("{PORT}", fmt.Sprint(g.port), "{ADMIN}", strings.TrimPrefix(g.admin, "http://127.0.0.1:"),
		"{UPSTREAM}", up.addr).Replace(site(options))
	names := []string{"requests_total", "logins_total", "logouts_total", "revocations_total",
		"store_duration_seconds_count", "touches_total", "notifications_total", "rate_limited_total"}
	values := func() map[string]float64 {
		_, body := g.adminDo("GET", "/metrics", "")
		out := map[string]float64{}
		for _, line := range strings.Split(body, "\n") {
			for _, n := range names {
				full := "caddy_session_auth_" + n
				if strings.HasPrefix(line, full+"{") || strings.HasPrefix(line, full+" ") {
					var v float64
					fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v)
					out[n] += v
				}
			}
		}
		return out
	}
	exercise := func(user string) {
		a, b := newClient(t, g), newClient(t, g)
		a.signIn(user)
		b.signIn(user) // new_login
		time.Sleep(5 * time.Millisecond)
		a.do("GET", "/")               // a touch
		a.do("GET", "/?logout=others") // revocation, revoke notice
		a.do("POST", "/.auth/logout")  // logout
		guess(newClient(t, g), 2, "X-Forwarded-For", "203.0.113."+fmt.Sprint(len(user)))
	}
	exercise("r0")
	waitUntil(t, 10*time.Second, func() bool { return values()["notifications_total"] >= 2 })
	for i := range 5 {
		g.load(text + fmt.Sprintf("# reload %d\n", i))
	}
	newClient(t, g).doThroughHandOver("GET", "/") // past the listener hand-over
	before := values()
	exercise("reload-user")
	waitUntil(t, 10*time.Second, func() bool { return values()["notifications_total"] >= before["notifications_total"]+2 })
	after := values()
	for _, n := range names {
		if after[n] <= before[n] {
			t.Errorf("after 5 reloads, %s did not move: %v → %v", n, before[n], after[n])
		}
	}
}
