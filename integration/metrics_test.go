package integration

import (
	"strings"
	"testing"
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
