package integration

import (
	"fmt"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/sessionauth/caddy-sessionauth/internal/redisserver"
)

// The JSON config works as the Caddyfile does (same fields, snake_case).
func TestJSONConfig(t *testing.T) {
	up := newUpstream(t)
	port, admin := redisserver.FreePort(t), redisserver.FreePort(t)
	cfg := fmt.Sprintf(`{
	"admin": {"listen": "127.0.0.1:%d", "config": {"persist": false}},
	"apps": {"http": {"servers": {"srv0": {
		"listen": [":%d"],
		"automatic_https": {"disable": true},
		"routes": [{"handle": [
			{"handler": "session_auth", "store": {"type": "memory"}, "login": ["/signin"],
			 "lifetime": "1h", "idle_timeout": "30m", "max_sessions": 1, "max_sessions_mode": "reject",
			 "header_prefix": "X-User-", "unauthenticated": {"status": 403}},
			{"handler": "reverse_proxy", "upstreams": [{"dial": "%s"}]}
		]}]
	}}}}
}`, admin, port, up.addr)
	if err := caddy.Load([]byte(cfg), true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stopCaddy)
	g := &gateway{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", port), admin: fmt.Sprintf("http://127.0.0.1:%d", admin), port: port}
	c := newClient(t, g)
	if res := c.do("GET", "/x", "Accept", "text/html"); res.StatusCode != 403 {
		t.Fatalf("unauthenticated status 403: %d", res.StatusCode)
	}
	res := c.do("POST", "/signin?user=olga&status=303")
	ck := sessionCookie(res, "session")
	if res.StatusCode != 303 || ck == nil || !strings.Contains(strings.Join(res.Header.Values("Set-Cookie"), ""), "Max-Age=3600") {
		t.Fatalf("JSON-configured hand-off: %d %v", res.StatusCode, res.Header)
	}
	c.cookie = ck.Value
	if res := c.do("GET", "/x", "X-User-Id", "mallory"); res.headers["X-User-User"] != "olga" {
		t.Fatalf("prefix X-User-: %v", res.headers)
	}
	if res := newClient(t, g).do("POST", "/signin?user=olga&status=303"); res.StatusCode != 429 {
		t.Fatalf("max_sessions 1 reject: %d", res.StatusCode)
	}
	// An invalid JSON config is refused with a clear error.
	bad := strings.Replace(cfg, `"idle_timeout": "30m"`, `"idle_timeout": "2h"`, 1)
	if err := caddy.Load([]byte(bad), true); err == nil || !strings.Contains(err.Error(), "idle_timeout") {
		t.Fatalf("idle_timeout > lifetime accepted: %v", err)
	}
}

// A password-protected Redis, the password from {env.*}: it is expanded at
// provision, and a wrong one gives 503, not anonymous access.
func TestRedisPasswordFromEnv(t *testing.T) {
	srv := redisserver.Start(t, "--requirepass", "s3cret-pw")
	t.Setenv("SA_TEST_REDIS_PASSWORD", "s3cret-pw")
	up := newUpstream(t)
	g := loadCaddy(t, site(fmt.Sprintf("store redis redis://%s {\n password {env.SA_TEST_REDIS_PASSWORD}\n }", srv.Addr)), up)
	c := newClient(t, g)
	c.signIn("pat")
	if res := c.do("GET", "/"); res.headers["X-Auth-User"] != "pat" {
		t.Fatalf("with the password: %d %v", res.StatusCode, res.headers)
	}
	t.Setenv("SA_TEST_REDIS_PASSWORD", "wrong")
	g2 := loadCaddy(t, site(fmt.Sprintf("store redis redis://%s {\n password {env.SA_TEST_REDIS_PASSWORD}\n }", srv.Addr)), up)
	c2 := newClient(t, g2)
	c2.cookie = c.cookie
	if res := c2.do("GET", "/"); res.StatusCode != 503 {
		t.Fatalf("wrong password: %d", res.StatusCode)
	}
	if res := newClient(t, g2).do("POST", "/login?user=pat&status=303"); res.StatusCode != 503 || sessionCookie(res, "session") != nil {
		t.Fatalf("sign-in with a wrong password: %d", res.StatusCode)
	}
}
