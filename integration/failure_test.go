package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sessionauth/caddy-sessionauth/internal/redisserver"
)

func redisSite(srv *redisserver.Server, extra string) string {
	return site(fmt.Sprintf("store redis redis://%s {\n key_prefix %s:\n read_timeout 200ms\n dial_timeout 200ms\n }\n%s", srv.Addr, randomID(), extra))
}

// A stopped Redis: 503 with Retry-After, never anonymous, never an
// identity; when it is back, service resumes without a restart.
func TestRedisStopped(t *testing.T) {
	srv := redisserver.Start(t)
	up := newUpstream(t)
	g := loadCaddy(t, redisSite(srv, ""), up)
	c := newClient(t, g)
	c.signIn("alice")
	before := up.total()

	srv.Stop()
	for _, res := range []*response{
		c.do("GET", "/app", "Accept", "text/html"),
		c.do("GET", "/.auth/me"),
		c.do("POST", "/.auth/logout"),
	} {
		if res.StatusCode != 503 || res.Header.Get("Retry-After") == "" {
			t.Errorf("%s with Redis stopped: %d, Retry-After %q", res.Request.URL.Path, res.StatusCode, res.Header.Get("Retry-After"))
		}
	}
	// A sign-in POST cannot be counted against login_rate: 503 before the
	// upstream does any work.
	res := newClient(t, g).do("POST", "/login?user=bob&status=303")
	if res.StatusCode != 503 || res.Header.Get("Retry-After") == "" || sessionCookie(res, "session") != nil {
		t.Errorf("sign-in POST with Redis stopped: %d", res.StatusCode)
	}
	if got := up.total() - before; got != 0 {
		t.Errorf("upstream reached %d times while Redis was down", got)
	}
	// A hand-off the store cannot record (an OAuth-style GET callback):
	// 503, no cookie, the upstream's answer dropped.
	res = newClient(t, g).do("GET", "/login?user=bob&status=303")
	if res.StatusCode != 503 || res.Header.Get("Retry-After") == "" || sessionCookie(res, "session") != nil ||
		strings.Contains(res.body, "upstream-body") || res.Header.Get("Location") != "" {
		t.Errorf("hand-off with Redis stopped: %d %v %s", res.StatusCode, res.Header, res.body)
	}
	if got := up.total() - before; got != 1 { // only the callback reached it
		t.Errorf("upstream reached %d times while Redis was down", got)
	}

	srv.Restart() // empty: the old session is gone, as a restarted Redis without persistence would have it
	if res := c.do("GET", "/app"); res.StatusCode != 401 {
		t.Errorf("after restart, old cookie: %d", res.StatusCode)
	}
	c.signIn("alice")
	if res := c.do("GET", "/app"); res.StatusCode != 200 || res.headers["X-Auth-User"] != "alice" {
		t.Errorf("after restart: %d %v", res.StatusCode, res.headers)
	}
}

// A hanging Redis (accepts, never answers): requests get 503 within the
// read timeout instead of piling up, and the same session works again
// when Redis answers.
func TestRedisHangs(t *testing.T) {
	srv := redisserver.Start(t)
	up := newUpstream(t)
	g := loadCaddy(t, redisSite(srv, ""), up)
	c := newClient(t, g)
	c.signIn("alice")
	before := up.total()

	resume := srv.Pause()
	defer resume()
	done := make(chan *response, 3)
	for i := 0; i < 3; i++ {
		go func() { done <- c.do("GET", "/app") }()
	}
	for i := 0; i < 3; i++ {
		select {
		case res := <-done:
			if res.StatusCode != 503 || res.Header.Get("Retry-After") == "" {
				t.Errorf("hanging Redis: %d", res.StatusCode)
			}
		case <-time.After(8 * time.Second): // a bound, not a measurement
			t.Fatal("request hung with Redis")
		}
	}
	if up.total() != before {
		t.Error("a request reached the upstream while Redis hung")
	}
	resume()
	deadline := time.Now().Add(5 * time.Second)
	for {
		res := c.do("GET", "/app")
		if res.StatusCode == 200 && res.headers["X-Auth-User"] == "alice" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery after Redis resumed: %d", res.StatusCode)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Real time, kept short: activity keeps a session past its idle timeout,
// the lifetime ends it anyway, and idleness alone ends another. The
// margins (a request every 300 ms against a 2 s idle timeout) leave room
// for a loaded machine.
func TestExpiryInRealTime(t *testing.T) {
	stores(t, func(t *testing.T, store string, _ *redisserver.Server) {
		g := loadCaddy(t, site(store+"\nlifetime 3s\nidle_timeout 2s\ntouch_interval 100ms"), newUpstream(t))
		busy, idle := newClient(t, g), newClient(t, g)
		busy.signIn("ivy")
		idle.signIn("judy")
		start := time.Now()
		for time.Since(start) < 2500*time.Millisecond {
			if res := busy.do("GET", "/"); res.StatusCode != 200 {
				t.Fatalf("busy session ended after %v: %d", time.Since(start), res.StatusCode)
			}
			time.Sleep(300 * time.Millisecond)
		}
		if res := idle.do("GET", "/"); res.StatusCode != 401 {
			t.Fatalf("idle session alive after %v", time.Since(start))
		}
		for time.Since(start) < 3100*time.Millisecond {
			time.Sleep(50 * time.Millisecond)
		}
		if res := busy.do("GET", "/"); res.StatusCode != 401 {
			t.Fatalf("session alive past its lifetime: %d", res.StatusCode)
		}
	})
}

// A config reload keeps every session, for both stores.
func TestReloadKeepsSessions(t *testing.T) {
	stores(t, func(t *testing.T, store string, _ *redisserver.Server) {
		up := newUpstream(t)
		g := loadCaddy(t, site(store), up)
		c := newClient(t, g)
		c.signIn("kim")
		text := strings.NewReplacer("{PORT}", fmt.Sprint(g.port), "{ADMIN}", strings.TrimPrefix(g.admin, "http://127.0.0.1:"),
			"{UPSTREAM}", up.addr).Replace(site(store + "\nheader_prefix X-Auth-"))
		for i := 0; i < 3; i++ {
			g.load(text + fmt.Sprintf("# reload %d\n", i))
			if res := c.do("GET", "/"); res.StatusCode != 200 || res.headers["X-Auth-User"] != "kim" {
				t.Fatalf("after reload %d: %d", i, res.StatusCode)
			}
		}
	})
}
