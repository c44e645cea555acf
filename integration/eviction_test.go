package integration

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sessionauth/caddy-sessionauth/internal/redisserver"
	"github.com/sessionauth/caddy-sessionauth/session"
)

// A Redis that evicts keys (any allkeys-* or volatile-* policy: every key
// has a TTL) may drop a user's index and keep the user's sessions. Such a
// session is refused (401, never 200, the cookie cleared, counted), so
// neither "revoke all" nor the emergency revocation can be escaped.
func TestEvictedIndexIsNoEscape(t *testing.T) {
	srv := redisserver.Start(t)
	prefix := randomID() + ":"
	g := loadCaddy(t, site(fmt.Sprintf("store redis redis://%s {\n key_prefix %s\n }", srv.Addr, prefix)), newUpstream(t))
	rc := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { rc.Close() })
	evict := func(user string) {
		t.Helper()
		if n, err := rc.Del(context.Background(), prefix+"{"+session.LegacyUserTag(user)+"}:u:"+user).Result(); n != 1 || err != nil {
			t.Fatalf("evicting %s's index: %d %v", user, n, err)
		}
	}
	refused := func(what string, c *client) {
		t.Helper()
		res := c.do("GET", "/")
		if res.StatusCode != 401 || !strings.Contains(res.Header.Get("Set-Cookie"), "Max-Age=0") {
			t.Fatalf("%s: %d %q", what, res.StatusCode, res.Header.Get("Set-Cookie"))
		}
	}
	served := func(what string, c *client, user string) {
		t.Helper()
		if res := c.do("GET", "/"); res.StatusCode != 200 || res.headers["X-Auth-User"] != user {
			t.Fatalf("%s: %d %v", what, res.StatusCode, res.headers)
		}
	}
	alice1, alice2, alice3, bob, carol := newClient(t, g), newClient(t, g), newClient(t, g), newClient(t, g), newClient(t, g)
	alice1.signIn("alice")
	alice2.signIn("alice")
	bob.signIn("bob")
	served("before the eviction", alice1, "alice")
	served("before the eviction", alice2, "alice")

	evict("alice")
	refused("a session its user's index no longer lists", alice1)
	refused("a session its user's index no longer lists", alice2)
	served("another user", bob, "bob")

	// Revoking all of alice's sessions reaches only the one she signs in
	// with next; the others stay refused.
	alice3.signIn("alice")
	served("a sign-in after the eviction", alice3, "alice")
	code, body := g.adminDo("DELETE", "/session-auth/users/alice/sessions", "")
	if id, _, _ := strings.Cut(alice3.cookie, "."); code != 200 || body != `{"revoked":["`+id+`"]}`+"\n" {
		t.Fatalf("revoke all: %d %s", code, body)
	}
	refused("revoked", alice3)
	refused("unlisted, after revoke all", alice1)

	// The emergency stop: everyone, whether their index is there or not.
	carol.signIn("carol")
	served("before the eviction", carol, "carol")
	evict("carol")
	if code, body := g.adminDo("DELETE", "/session-auth/sessions?all=true", ""); code != 200 {
		t.Fatalf("revoke everyone: %d %s", code, body)
	}
	refused("after revoke everyone", bob)
	refused("unlisted, after revoke everyone", carol)

	_, metrics := g.adminDo("GET", "/metrics", "")
	m := regexp.MustCompile(`(?m)^caddy_session_auth_unlisted_sessions_total (\d+)`).FindStringSubmatch(metrics)
	if m == nil {
		t.Fatal("/metrics lacks caddy_session_auth_unlisted_sessions_total")
	}
	if n, _ := strconv.Atoi(m[1]); n < 4 {
		t.Fatalf("unlisted sessions counted: %d, want at least 4", n)
	}
}

// The same with a Redis that really evicts: maxmemory 4mb, allkeys-lru,
// and sign-ins until it has evicted some users' indexes while keeping
// their sessions. None of those sessions is served, "revoke all" finds
// nothing to revoke for those users, and after the emergency revocation
// no session is served at all.
func TestRealEvictionIsNoEscape(t *testing.T) {
	srv := redisserver.Start(t, "--maxmemory", "4mb", "--maxmemory-policy", "allkeys-lru")
	prefix := randomID() + ":"
	g := loadCaddy(t, site(fmt.Sprintf("store redis redis://%s {\n key_prefix %s\n }", srv.Addr, prefix)), newUpstream(t))
	rc := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { rc.Close() })
	direct := session.NewRedis(rc, prefix, nil) // signs in faster than HTTP
	ctx := context.Background()

	type minted struct{ user, id, cookie string }
	var all []minted
	var victims, intact []minted
	for len(victims) < 20 {
		if len(all) >= 40000 {
			t.Fatalf("%d sign-ins evicted no index alone", len(all))
		}
		for i := 0; i < 2000; i++ {
			user := fmt.Sprintf("user-%d", len(all))
			id, cookie, hash, err := session.LegacyCredential(user)
			if err != nil {
				t.Fatal(err)
			}
			now := time.Now()
			if _, err := direct.Create(ctx, &session.Session{ID: id, UserID: user, TokenHash: hash, CreatedAt: now, LastActiveAt: now}, testPolicy, session.Limit{}); err != nil {
				t.Fatal(err)
			}
			all = append(all, minted{user, id, cookie})
		}
		pipe := rc.Pipeline()
		exists := make([][2]*redis.IntCmd, len(all))
		for i, m := range all {
			tp := prefix + "{" + session.LegacyUserTag(m.user) + "}:"
			exists[i] = [2]*redis.IntCmd{pipe.Exists(ctx, tp+"s:"+m.id), pipe.Exists(ctx, tp+"u:"+m.user)}
		}
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatal(err)
		}
		victims, intact = victims[:0], intact[:0]
		for i, m := range all {
			switch s, u := exists[i][0].Val(), exists[i][1].Val(); {
			case s == 1 && u == 0:
				victims = append(victims, m)
			case s == 1 && u == 1:
				intact = append(intact, m)
			}
		}
	}
	t.Logf("%d sign-ins: %d sessions whose index was evicted, %d intact", len(all), len(victims), len(intact))

	c := newClient(t, g)
	try := func(m minted) int {
		c.cookie = m.cookie
		return c.do("GET", "/").StatusCode
	}
	victims = victims[:20]
	for _, m := range victims {
		if code := try(m); code != 401 {
			t.Fatalf("a session whose index was evicted: %d", code)
		}
		if code, body := g.adminDo("DELETE", "/session-auth/users/"+m.user+"/sessions", ""); code != 200 || body != `{"revoked":[]}`+"\n" {
			t.Fatalf("revoke all of %s: %d %s", m.user, code, body)
		}
		if code := try(m); code != 401 {
			t.Fatalf("after revoke all: %d", code)
		}
	}
	sample := intact[len(intact)-min(20, len(intact)):] // the newest: least likely to be evicted meanwhile
	servedAny := false
	for _, m := range sample {
		servedAny = servedAny || try(m) == 200
	}
	if !servedAny {
		t.Fatal("no intact session was served: the check refuses too much")
	}
	if code, body := g.adminDo("DELETE", "/session-auth/sessions?all=true", ""); code != 200 {
		t.Fatalf("revoke everyone: %d %s", code, body)
	}
	for _, m := range append(victims, sample...) {
		if code := try(m); code == 200 {
			t.Fatalf("a session served after revoke everyone (%s)", m.user)
		}
	}
}
