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

// proxiedSite is a gateway that reaches Redis through a proxy the test
// can break, and a store on the real address for acting "elsewhere".
func proxiedSite(t *testing.T, extra string) (*gateway, *redisserver.Proxy, *session.Redis, *testUpstream) {
	srv := redisserver.Start(t)
	p := redisserver.NewProxy(t, srv.Addr)
	prefix := randomID() + ":"
	up := newUpstream(t)
	g := loadCaddy(t, site(fmt.Sprintf("store redis redis://%s {\n key_prefix %s\n read_timeout 200ms\n dial_timeout 200ms\n }\n%s", p.Addr, prefix, extra)), up)
	rc := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{srv.Addr}})
	t.Cleanup(func() { rc.Close() })
	return g, p, session.NewRedis(rc, prefix, nil), up
}

var testPolicy = session.Policy{Lifetime: 720 * time.Hour, IdleTimeout: 720 * time.Hour, TouchInterval: 5 * time.Minute, Retention: 720 * time.Hour}

func TestStoreUnavailableGrace(t *testing.T) {
	g, p, direct, up := proxiedSite(t, "store_unavailable grace 1m")
	seen, revoked := newClient(t, g), newClient(t, g)
	seen.signIn("gina")
	revoked.signIn("hank")
	if seen.do("GET", "/").StatusCode != 200 || revoked.do("GET", "/").StatusCode != 200 {
		t.Fatal("before the cut")
	}
	// A session this gateway never validated (made elsewhere).
	id, token, hash, _ := session.LegacyCredential("ivy")
	now := time.Now()
	if _, err := direct.Create(context.Background(), &session.Session{ID: id, UserID: "ivy", TokenHash: hash, CreatedAt: now, LastActiveAt: now}, testPolicy, session.Limit{}); err != nil {
		t.Fatal(err)
	}
	unseen := newClient(t, g)
	unseen.cookie = token

	p.Cut()
	// Meanwhile, elsewhere, hank's session is revoked.
	hankID := strings.SplitN(revoked.cookie, ".", 2)[0]
	if _, err := direct.End(context.Background(), hankID, time.Now(), session.EndRevoked, session.ActorAdmin, testPolicy); err != nil {
		t.Fatal(err)
	}
	res := seen.do("GET", "/", "X-Auth-Degraded", "false")
	if res.StatusCode != 200 || res.headers["X-Auth-Degraded"] != "true" || res.headers["X-Auth-User"] != "gina" {
		t.Fatalf("seen session during the cut: %d %v", res.StatusCode, res.headers)
	}
	if res := unseen.do("GET", "/"); res.StatusCode != 503 {
		t.Fatalf("a session this gateway never saw, during the cut: %d", res.StatusCode)
	}
	if res := newClient(t, g).do("GET", "/", "X-Auth-Degraded", "true", "Accept", "application/json"); res.StatusCode != 401 || up.count("/") > 3 {
		t.Fatalf("anonymous during the cut: %d", res.StatusCode)
	}

	p.Heal()
	waitUntil(t, 5*time.Second, func() bool {
		res := seen.do("GET", "/")
		return res.StatusCode == 200 && res.headers["X-Auth-Degraded"] == ""
	})
	if res := revoked.do("GET", "/"); res.StatusCode != 401 {
		t.Fatalf("a revocation made during the cut does not hold after it: %d", res.StatusCode)
	}
	if res := unseen.do("GET", "/"); res.StatusCode != 200 || res.headers["X-Auth-User"] != "ivy" {
		t.Fatalf("after the cut, the other session: %d", res.StatusCode)
	}
}

// Slow Redis: answers later than read_timeout give 503, not a pile-up;
// a connection dropped mid-reply gives 503, not 500 or anonymous; both
// recover by themselves.
func TestRedisSlowAndDropped(t *testing.T) {
	g, p, _, up := proxiedSite(t, "")
	c := newClient(t, g)
	c.signIn("jack")
	before := up.total()

	p.Slow(400 * time.Millisecond)
	start := time.Now()
	if res := c.do("GET", "/"); res.StatusCode != 503 || res.Header.Get("Retry-After") == "" {
		t.Fatalf("slow Redis: %d", res.StatusCode)
	}
	if time.Since(start) > 5*time.Second { // a bound on hanging, not a measurement
		t.Fatalf("a slow Redis held the request %v", time.Since(start))
	}
	p.Drop()
	for i := 0; i < 3; i++ {
		if res := c.do("GET", "/"); res.StatusCode != 503 {
			t.Fatalf("dropped connection: %d", res.StatusCode)
		}
	}
	if up.total() != before {
		t.Fatal("a request reached the upstream while Redis misbehaved")
	}
	p.Heal()
	waitUntil(t, 5*time.Second, func() bool { return c.do("GET", "/").StatusCode == 200 })
}
