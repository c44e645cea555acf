package integration

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
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

// A hanging Redis (SIGSTOP: accepts, never answers): every check gets 503
// within read_timeout and a small margin, alone or 64 at once, instead of
// piling up; the same session works again when Redis answers.
func TestRedisHangs(t *testing.T) {
	const readTimeout = 500 * time.Millisecond
	const bound = readTimeout + time.Second // the margin is for a busy machine
	srv := redisserver.Start(t)
	up := newUpstream(t)
	g := loadCaddy(t, site(fmt.Sprintf("store redis redis://%s {\n key_prefix %s:\n read_timeout %s\n dial_timeout 200ms\n }",
		srv.Addr, randomID(), readTimeout)), up)
	c := newClient(t, g)
	c.signIn("alice")
	before := up.total()

	resume := srv.Pause()
	defer resume()
	for _, n := range []int{1, 64} {
		took := make([]time.Duration, n)
		codes := make([]int, n)
		var wg sync.WaitGroup
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				codes[i], took[i] = timedGet(g, c.cookie)
			}()
		}
		wg.Wait()
		slices.Sort(took)
		t.Logf("%d concurrent checks with Redis frozen, read_timeout %v: fastest %v, median %v, slowest %v",
			n, readTimeout, took[0].Round(time.Millisecond), took[n/2].Round(time.Millisecond), took[n-1].Round(time.Millisecond))
		for _, code := range codes {
			if code != 503 {
				t.Errorf("%d concurrent, hanging Redis: %d", n, code)
				break
			}
		}
		if took[n-1] > bound {
			t.Errorf("%d concurrent: the slowest 503 took %v, more than read_timeout %v and a margin", n, took[n-1], readTimeout)
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

// timedGet sends GET /app with the session cookie on a connection of its
// own and says how it was answered (0: not at all, within 10 s) and how
// long that took.
func timedGet(g *gateway, cookie string) (int, time.Duration) {
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	req, _ := http.NewRequest("GET", g.base+"/app", nil)
	req.Header.Set("Cookie", "session="+cookie)
	start := time.Now()
	res, err := hc.Do(req)
	took := time.Since(start)
	if err != nil {
		return 0, took
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.Header.Get("Retry-After") == "" && res.StatusCode == 503 {
		return -503, took // a 503 without Retry-After is not the store's answer
	}
	return res.StatusCode, took
}

// Real time, kept short: activity keeps a session past its idle timeout,
// the lifetime ends it anyway, and idleness alone ends another. The
// margins (a request every 300 ms against a 2 s idle timeout) leave room
// for a loaded machine. Only Redis: there time also passes outside this
// process (key TTLs), while the embedded stores' expiry is the same Policy
// that the conformance suite and the handler tests run on an injected
// clock (testIdle, testLifetime, TestIdleAndLifetime…), in no time.
func TestExpiryInRealTime(t *testing.T) {
	{
		store := redisStoreLine(redisserver.Start(t))
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
	}
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
			if res := c.doThroughHandOver("GET", "/"); res.StatusCode != 200 || res.headers["X-Auth-User"] != "kim" {
				t.Fatalf("after reload %d: %d", i, res.StatusCode)
			}
		}
	})
}
