package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sessionauth/caddy-sessionauth/internal/redisserver"
)

// listed returns the sessions the admin API lists for user: id → active.
func (g *gateway) listed(user string) map[string]bool {
	g.t.Helper()
	code, body := g.adminDo("GET", "/session-auth/users/"+url.PathEscape(user)+"/sessions", "")
	var list []struct {
		ID     string `json:"id"`
		Active bool   `json:"active"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &list) != nil {
		g.t.Fatalf("list %s: %d %s", user, code, body)
	}
	out := map[string]bool{}
	for _, s := range list {
		out[s.ID] = s.Active
	}
	return out
}

// A sign-in the store fails halfway, or answers too late, leaves nothing:
// the client gets 503 and no cookie, and no session stays listed or
// counted, so that max_sessions with reject locks nobody out. The reply
// of Redis is lost after it ran the command (to the sign-in script, or to
// the IP index written after it), through a proxy.
func TestFailedSignInLeavesNothing(t *testing.T) {
	srv := redisserver.Start(t)
	proxy := redisserver.NewProxy(t, srv.Addr)
	up := newUpstream(t)
	store := fmt.Sprintf("store redis redis://%s {\n key_prefix %s:\n read_timeout 300ms\n }", proxy.Addr, randomID())
	g := loadCaddy(t, site(store+"\nmax_sessions 1 reject"), up)

	for name, pattern := range map[string]string{
		"script": "$6\r\nreject\r\n", // an argument of the sign-in script only
		"index":  "zremrangebyscore", // the IP index, written after it
	} {
		user := name + "-" + randomID()
		proxy.LoseRepliesTo(pattern)
		res := newClient(t, g).do("POST", "/login?user="+user+"&status=303")
		proxy.Heal()
		if res.StatusCode != 503 || sessionCookie(res, "session") != nil {
			t.Fatalf("%s: sign-in with its reply lost: %d, cookie %v", name, res.StatusCode, sessionCookie(res, "session"))
		}
		waitUntil(t, 10*time.Second, func() bool { return len(g.listed(user)) == 0 })
		c := newClient(t, g)
		c.signIn(user) // not 429: nothing counts towards the limit
		if res := c.do("GET", "/"); res.StatusCode != 200 || res.headers["X-Auth-User"] != user {
			t.Fatalf("%s: after the failed sign-in: %d", name, res.StatusCode)
		}
		if l := g.listed(user); len(l) != 1 {
			t.Fatalf("%s: %d sessions listed, want the one signed in", name, len(l))
		}
	}

	// Redis stalls in the middle of a burst of sign-ins: whatever it ran
	// late, every user holds exactly the sessions it was given a cookie
	// for, and can sign in.
	users := make([]string, 80)
	got := make([]bool, len(users))
	var wg sync.WaitGroup
	side := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer side.Close()
	signedIn := make(chan struct{}, len(users))
	go func() { // once sign-ins are under way, Redis stops answering for a second
		for i := 0; i < 5; i++ {
			<-signedIn
		}
		_ = side.Do(context.Background(), "CLIENT", "PAUSE", "1000", "ALL").Err()
	}()
	for i := range users {
		users[i] = fmt.Sprintf("burst-%d-%s", i, randomID())
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := newClient(t, g).do("POST", "/login?user="+users[i]+"&status=303")
			got[i] = res.StatusCode == 303 && sessionCookie(res, "session") != nil
			if got[i] {
				signedIn <- struct{}{}
			}
		}()
	}
	wg.Wait()
	if err := side.Ping(context.Background()).Err(); err != nil { // answered once the pause is over
		t.Fatal(err)
	}
	failed := 0
	for i, u := range users {
		want := 0
		if got[i] {
			want = 1
		} else {
			failed++
		}
		waitUntil(t, 10*time.Second, func() bool { return len(g.listed(u)) == want })
		if !got[i] {
			newClient(t, g).signIn(u)
		}
	}
	t.Logf("%d of %d sign-ins failed while Redis stalled", failed, len(users))
}

// Sessions that a failed sign-in ended for the limit stay ended, and are
// logged, notified and announced to the other gateways' caches as a
// successful sign-in's would be.
func TestFailedSignInRecordsWhatItEnded(t *testing.T) {
	srv := redisserver.Start(t)
	proxy := redisserver.NewProxy(t, srv.Addr)
	rc := newReceiver(t, 0, "")
	prefix := randomID() + ":"
	store := fmt.Sprintf("store redis redis://%s {\n key_prefix %s\n read_timeout 300ms\n }", proxy.Addr, prefix)
	g := loadCaddy(t, site(store+fmt.Sprintf("\nmax_sessions 1\nnotify http://%s/hook {\n secret hook-secret\n events revoke\n }", rc.addr)), newUpstream(t))

	sub := redis.NewClient(&redis.Options{Addr: srv.Addr}).Subscribe(context.Background(), prefix+"revoked")
	defer sub.Close()
	if _, err := sub.Receive(context.Background()); err != nil {
		t.Fatal(err)
	}
	user := "ended-" + randomID()
	a := newClient(t, g)
	a.signIn(user)
	aID := strings.SplitN(a.cookie, ".", 2)[0]

	proxy.LoseRepliesTo("$6\r\noldest\r\n")
	res := newClient(t, g).do("POST", "/login?user="+user+"&status=303")
	proxy.Heal()
	if res.StatusCode != 503 || sessionCookie(res, "session") != nil {
		t.Fatalf("sign-in with its reply lost: %d", res.StatusCode)
	}
	select {
	case m := <-sub.Channel():
		if m.Payload != aID {
			t.Fatalf("announced %q, want %s", m.Payload, aID)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the session the limit ended was not announced")
	}
	waitUntil(t, 10*time.Second, func() bool { return rc.find("revoke", aID) != nil })
	if l := g.listed(user); len(l) != 1 || l[aID] {
		t.Fatalf("listed %v, want only %s, ended", l, aID)
	}
	if res := a.do("GET", "/"); res.StatusCode != 401 {
		t.Fatalf("the session the limit ended still works: %d", res.StatusCode)
	}
	if _, body := g.adminDo("GET", "/metrics", ""); !strings.Contains(body, `caddy_session_auth_revocations_total{actor="limit"} 1`) {
		t.Error("the revocation by the limit was not counted")
	}
}
