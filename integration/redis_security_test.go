package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sessionauth/caddy-sessionauth/internal/redisserver"
	"github.com/sessionauth/caddy-sessionauth/session"
)

func TestRedisTLS(t *testing.T) {
	f := redisserver.MakeCerts(t)
	srv := redisserver.StartTLS(t, f)
	store := fmt.Sprintf("store redis rediss://%s {\n tls_ca %s\n tls_cert %s\n tls_key %s\n read_timeout 300ms\n dial_timeout 300ms\n }", srv.Addr, f.CA, f.ClientCert, f.ClientKey)
	g := loadCaddy(t, site(store), newUpstream(t))
	c := newClient(t, g)
	c.signIn("tess")
	if res := c.do("GET", "/"); res.StatusCode != 200 || res.headers["X-Auth-User"] != "tess" {
		t.Fatalf("over mutual TLS: %d %v", res.StatusCode, res.headers)
	}

	for name, store := range map[string]string{
		"no client certificate": fmt.Sprintf("store redis rediss://%s {\n tls_ca %s\n dial_timeout 300ms\n }", srv.Addr, f.CA),
		"untrusted server":      fmt.Sprintf("store redis rediss://%s {\n dial_timeout 300ms\n tls_cert %s\n tls_key %s\n }", srv.Addr, f.ClientCert, f.ClientKey),
		"wrong server name":     fmt.Sprintf("store redis rediss://%s {\n tls_ca %s\n tls_cert %s\n tls_key %s\n tls_server_name redis.example.com\n dial_timeout 300ms\n }", srv.Addr, f.CA, f.ClientCert, f.ClientKey),
		"plain text":            fmt.Sprintf("store redis redis://%s {\n dial_timeout 300ms\n read_timeout 300ms\n }", srv.Addr),
	} {
		g := loadCaddy(t, site(store), newUpstream(t))
		if res := newClient(t, g).do("POST", "/login?user=tess&status=303"); res.StatusCode != 503 || sessionCookie(res, "session") != nil {
			t.Errorf("%s: %d", name, res.StatusCode)
		}
	}
}

func TestRedisLeastPrivilegeACL(t *testing.T) {
	srv := redisserver.Start(t)
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer admin.Close()
	ctx := context.Background()
	args := []any{"ACL", "SETUSER", "gateway"}
	for _, a := range strings.Fields(fmt.Sprintf(session.RedisACL, "gw-pass")) {
		args = append(args, a)
	}
	if err := admin.Do(ctx, args...).Err(); err != nil {
		t.Fatal(err)
	}
	rc := newReceiver(t, 1, "") // fails once: a retry goes through the retry set
	store := fmt.Sprintf("store redis redis://%s {\n username gateway\n password gw-pass\n }\nguess_rate 3 1m\nmax_sessions 2\ncache 1m\nnotify http://%s/hook {\n secret hook-secret\n }", srv.Addr, rc.addr)
	g := loadCaddy(t, site(store), newUpstream(t))
	a, b, c := newClient(t, g), newClient(t, g), newClient(t, g)
	a.signIn("lee")
	b.signIn("lee")
	c.signIn("lee") // ends a (the limit)
	if a.do("GET", "/").StatusCode != 401 || b.do("GET", "/", "X-Forwarded-For", "203.0.113.8").StatusCode != 200 {
		t.Fatal("limit or sighting failed under the ACL")
	}
	if res := b.do("POST", "/.auth/logout"); res.StatusCode != 303 {
		t.Fatalf("logout: %d", res.StatusCode)
	}
	for _, path := range []string{"/session-auth/users/lee/sessions", "/session-auth/users/lee/events",
		"/session-auth/users/lee/sessions?limit=1", "/session-auth/users/lee/events?limit=1", "/session-auth/sessions?ip=127.0.0.1&limit=1"} {
		if code, body := g.adminDo("GET", path, ""); code != 200 {
			t.Fatalf("%s: %d %s", path, code, body)
		}
	}
	if code, _ := g.adminDo("DELETE", "/session-auth/users/lee/sessions", ""); code != 200 {
		t.Fatalf("revoke all: %d", code)
	}
	if last := guess(newClient(t, g), 4); last != 429 {
		t.Fatalf("guess_rate under the ACL: %d", last)
	}
	waitUntil(t, 20*time.Second, func() bool { return len(rc.events()) >= 3 }) // delivered, one after a retry
	// Nothing the gateway did was denied...
	denied, err := admin.Do(ctx, "ACL", "LOG").Slice()
	if err != nil || len(denied) != 0 {
		t.Fatalf("ACL denials: %v %v", denied, err)
	}
	// ...and the user can do no more than that.
	gw := redis.NewClient(&redis.Options{Addr: srv.Addr, Username: "gateway", Password: "gw-pass"})
	defer gw.Close()
	for _, cmd := range [][]any{{"FLUSHALL"}, {"KEYS", "*"}, {"CONFIG", "GET", "*"}, {"GET", "other:key"}, {"SUBSCRIBE", "x"}} {
		if err := gw.Do(ctx, cmd...).Err(); err == nil || !strings.Contains(err.Error(), "NOPERM") {
			t.Errorf("%v as the gateway user: %v", cmd, err)
		}
	}
}
