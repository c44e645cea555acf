package integration

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/sessionauth/caddy-sessionauth/internal/redisserver"
)

func randomToken() string {
	return randomID() + randomID() + "abcdefgh." + strings.Repeat("A", 42) + "E"
}

func TestGuessRate(t *testing.T) {
	stores(t, func(t *testing.T, store string, srv *redisserver.Server) {
		up := newUpstream(t)
		g := loadCaddy(t, site(store+"\nguess_rate 5 1m"), up)
		attacker := newClient(t, g)
		for i := 0; i < 5; i++ {
			attacker.cookie = randomToken()
			if res := attacker.do("GET", "/", "X-Forwarded-For", "198.51.100.66"); res.StatusCode != 401 {
				t.Fatalf("guess %d: %d", i, res.StatusCode)
			}
		}
		attacker.cookie = "malformed"
		res := attacker.do("GET", "/", "X-Forwarded-For", "198.51.100.66")
		if res.StatusCode != 429 || res.Header.Get("Retry-After") == "" {
			t.Fatalf("over guess_rate: %d %v", res.StatusCode, res.Header)
		}
		// A real session from the blocked address passes (after a store
		// wipe, users behind one NAT must not lock each other out), and
		// so does a sign-in made there after the block; another address
		// is not blocked; the address without any cookie is not either.
		victim := newClient(t, g)
		victim.signIn("vic")
		if res := victim.do("GET", "/", "X-Forwarded-For", "198.51.100.66"); res.StatusCode != 200 || res.headers["X-Auth-User"] != "vic" {
			t.Errorf("blocked address with a real session: %d", res.StatusCode)
		}
		again := newClient(t, g)
		if res := again.do("POST", "/login?user=vic2&status=303", "X-Forwarded-For", "198.51.100.66"); res.StatusCode != 303 {
			t.Fatalf("sign-in from the blocked address: %d", res.StatusCode)
		} else {
			again.cookie = sessionCookie(res, "session").Value
		}
		if res := again.do("GET", "/", "X-Forwarded-For", "198.51.100.66"); res.StatusCode != 200 || res.headers["X-Auth-User"] != "vic2" {
			t.Errorf("a session signed in from the blocked address: %d", res.StatusCode)
		}
		if res := victim.do("GET", "/", "X-Forwarded-For", "198.51.100.67"); res.StatusCode != 200 {
			t.Errorf("other address: %d", res.StatusCode)
		}
		if res := newClient(t, g).do("GET", "/login", "X-Forwarded-For", "198.51.100.66"); res.StatusCode != 200 {
			t.Errorf("blocked address without a cookie, login page: %d", res.StatusCode)
		}
		// IPv6 counts per /64.
		for i := 0; i < 6; i++ {
			attacker.cookie = randomToken()
			res = attacker.do("GET", "/", "X-Forwarded-For", fmt.Sprintf("2001:db8:5:6::%x", i+1))
		}
		if res.StatusCode != 429 {
			t.Errorf("6 guesses from one /64: %d", res.StatusCode)
		}
		if srv == nil {
			return
		}
		// Ten thousand random tokens from the blocked address: all 429.
		// Each is looked up once (a valid session would pass the block),
		// and none is counted or recorded again.
		rc := redis.NewClient(&redis.Options{Addr: srv.Addr})
		defer rc.Close()
		before := commands(t, rc)
		var wg sync.WaitGroup
		var not429 atomic.Int64
		jobs := make(chan int)
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range jobs {
					req, _ := http.NewRequest("GET", g.base+"/", nil)
					req.Header.Set("Cookie", "session="+randomToken())
					req.Header.Set("X-Forwarded-For", "198.51.100.66")
					res, err := http.DefaultClient.Do(req)
					if err != nil || res.StatusCode != 429 {
						not429.Add(1)
					}
					if err == nil {
						res.Body.Close()
					}
				}
			}()
		}
		for i := 0; i < 10000; i++ {
			jobs <- i
		}
		close(jobs)
		wg.Wait()
		if n := not429.Load(); n != 0 {
			t.Errorf("%d of 10000 guesses were not refused", n)
		}
		if got := commands(t, rc) - before; got > 10000+10 {
			t.Errorf("10000 refused guesses cost Redis %d commands", got)
		}
		if up.count("/") != 3 { // the victim's two requests and vic2's
			t.Errorf("upstream reached %d times", up.count("/"))
		}
		prefix := regexp.MustCompile(`key_prefix (\S+)`).FindStringSubmatch(store)[1]
		if n, _ := rc.LLen(context.Background(), prefix+"events").Result(); n != 2 {
			t.Errorf("rate_limited events without a user: %d, want 2 (one per address)", n)
		}
	})
}

// commands is Redis's count of commands processed (INFO itself is one).
func commands(t *testing.T, rc *redis.Client) int64 {
	info, err := rc.Info(context.Background(), "stats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "total_commands_processed:"); ok {
			var n int64
			fmt.Sscan(v, &n)
			return n
		}
	}
	t.Fatal("no total_commands_processed")
	return 0
}

func TestLoginRate(t *testing.T) {
	stores(t, func(t *testing.T, store string, _ *redisserver.Server) {
		up := newUpstream(t)
		g := loadCaddy(t, site(store+"\nlogin_rate 3 1m\nmax_sessions 0"), up)
		c := newClient(t, g)
		for i := 0; i < 3; i++ {
			if res := c.do("POST", "/login", "X-Forwarded-For", "198.51.100.70"); res.StatusCode != 200 {
				t.Fatalf("attempt %d: %d", i, res.StatusCode)
			}
		}
		before := up.count("/login")
		res := c.do("POST", "/login?user=x&status=303", "X-Forwarded-For", "198.51.100.70")
		if res.StatusCode != 429 || res.Header.Get("Retry-After") == "" || sessionCookie(res, "session") != nil || up.count("/login") != before {
			t.Fatalf("over login_rate: %d, upstream reached: %v", res.StatusCode, up.count("/login") != before)
		}
		if res := c.do("GET", "/login", "X-Forwarded-For", "198.51.100.70"); res.StatusCode != 200 {
			t.Errorf("the sign-in page itself: %d", res.StatusCode)
		}
		// Session creations per user, whatever the address.
		user := "rl-" + randomID()
		for i := 0; i < 3; i++ {
			res := c.do("POST", "/login?user="+user+"&status=303", "X-Forwarded-For", fmt.Sprintf("203.0.113.%d", 10+i))
			if res.StatusCode != 303 {
				t.Fatalf("creation %d: %d", i, res.StatusCode)
			}
		}
		res = c.do("POST", "/login?user="+user+"&status=303", "X-Forwarded-For", "203.0.113.99")
		if res.StatusCode != 429 || sessionCookie(res, "session") != nil || strings.Contains(res.body, "upstream-body") {
			t.Fatalf("creations over login_rate: %d %s", res.StatusCode, res.body)
		}
		_, body := g.adminDo("GET", "/session-auth/users/"+user+"/events", "")
		if !strings.Contains(body, `"type":"rate_limited"`) || !strings.Contains(body, `"reason":"login"`) {
			t.Errorf("no rate_limited event: %s", body)
		}
	})
}
