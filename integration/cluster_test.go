package integration

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sessionauth/caddy-sessionauth/internal/redisserver"
	"github.com/sessionauth/caddy-sessionauth/session"
)

// Through Caddy on a real 3-master Redis Cluster: sign-in, validation,
// limits, listing, revoke-all, audit, rate limits and notifications' queue
// all work across slots.
func TestRedisClusterThroughCaddy(t *testing.T) {
	c := redisserver.StartCluster(t, 3)
	store := "store redis {\n addresses " + strings.Join(c.Addrs(), " ") + "\n }\nmax_sessions 3\nguess_rate 3 1m"
	g := loadCaddy(t, site(store), newUpstream(t))
	var users []string
	for i := 0; i < 6; i++ {
		users = append(users, "cl-"+randomID())
	}
	for _, u := range users {
		var cs []*client
		for i := 0; i < 4; i++ { // one more than the limit
			cl := newClient(t, g)
			cl.signIn(u)
			cs = append(cs, cl)
		}
		if cs[0].do("GET", "/").StatusCode != 401 || cs[3].do("GET", "/", "X-Forwarded-For", "203.0.113.50").StatusCode != 200 {
			t.Fatalf("%s: limit or validation across the cluster", u)
		}
		if code, body := g.adminDo("GET", "/session-auth/users/"+u+"/sessions", ""); code != 200 || strings.Count(body, `"active":true`) != 3 {
			t.Fatalf("%s: list: %d %s", u, code, body)
		}
		if code, _ := g.adminDo("DELETE", "/session-auth/users/"+u+"/sessions", ""); code != 200 || cs[3].do("GET", "/").StatusCode != 401 {
			t.Fatalf("%s: revoke all", u)
		}
		if _, body := g.adminDo("GET", "/session-auth/users/"+u+"/events", ""); strings.Count(body, `"type":"login"`) != 4 || !strings.Contains(body, `"type":"ip_change"`) {
			t.Fatalf("%s: events: %s", u, body)
		}
	}
	if code, body := g.adminDo("GET", "/session-auth/sessions?ip=203.0.113.50", ""); code != 200 || body == "" {
		t.Fatalf("by IP: %d", code)
	}
	if last := guess(newClient(t, g), 4); last != 429 {
		t.Fatalf("guess_rate on the cluster: %d", last)
	}
	if code, body := g.adminDo("DELETE", "/session-auth/sessions?all=true", ""); code != 200 {
		t.Fatalf("revoke everyone on the cluster: %d %s", code, body)
	}
}

// A cluster node stops under load: the users whose keys it held get 503,
// never anonymous access; everybody else goes on; when the node is back
// (empty: these test nodes keep nothing on disk), service resumes.
func TestRedisClusterNodeStops(t *testing.T) {
	c := redisserver.StartCluster(t, 3)
	store := "store redis {\n addresses " + strings.Join(c.Addrs(), " ") + "\n read_timeout 300ms\n dial_timeout 300ms\n }"
	g := loadCaddy(t, site(store), newUpstream(t))
	var clients []*client
	for i := 0; i < 24; i++ { // spread over the slots of all three nodes
		cl := newClient(t, g)
		cl.signIn("node-" + randomID())
		clients = append(clients, cl)
	}
	c.Nodes[1].Stop()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ok, unavailable := 0, 0
		for _, cl := range clients {
			res := cl.do("GET", "/")
			switch {
			case res.StatusCode == 200 && res.headers["X-Auth-User"] != "":
				ok++
			case res.StatusCode == 503:
				unavailable++
			default:
				t.Fatalf("with a node down: %d %v (never anonymous)", res.StatusCode, res.headers)
			}
		}
		if ok > 0 && unavailable > 0 {
			break // both kinds seen: the dead node's users wait, the others go on
		}
		if time.Now().After(deadline) {
			t.Fatalf("with a node down: %d ok, %d unavailable", ok, unavailable)
		}
		time.Sleep(200 * time.Millisecond)
	}
	c.Nodes[1].Restart()
	waitUntil(t, 30*time.Second, func() bool {
		for _, cl := range clients {
			if code := cl.do("GET", "/").StatusCode; code != 200 && code != 401 {
				return false
			}
		}
		return true
	})
	fresh := newClient(t, g)
	fresh.signIn("after-" + randomID())
	if res := fresh.do("GET", "/"); res.StatusCode != 200 {
		t.Fatalf("a sign-in after the node came back: %d", res.StatusCode)
	}
}

// A live resharding of the slot that holds a user's keys, under load:
// every answer is the identity or 503 (a script that meets its keys half
// moved), never anonymous; afterwards everything works from the new node.
func TestRedisClusterResharding(t *testing.T) {
	c := redisserver.StartCluster(t, 3)
	store := "store redis {\n addresses " + strings.Join(c.Addrs(), " ") + "\n read_timeout 300ms\n dial_timeout 300ms\n }"
	g := loadCaddy(t, site(store), newUpstream(t))
	user := "reshard-" + randomID()
	cl := newClient(t, g)
	cl.signIn(user)
	cl.do("GET", "/", "X-Forwarded-For", "203.0.113.60") // a sighting: history and events too
	rc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	defer rc.Close()
	id, _, _ := strings.Cut(cl.cookie, ".") // the user's keys carry the tag its ids begin with
	slot, err := rc.ClusterKeySlot(context.Background(), "sa:{"+session.TagOfID(id)+"}:u:"+user).Result()
	if err != nil {
		t.Fatal(err)
	}
	owner := int(slot) / (16384 / 3)
	if owner > 2 {
		owner = 2
	}

	stopLoad := underLoad(cl, user, "X-Forwarded-For", "203.0.113.60")
	stopWrites := writesUnderLoad(g, user)
	c.MigrateSlot(t, int(slot), (owner+1)%3, 150*time.Millisecond)
	time.Sleep(300 * time.Millisecond)
	answered, unavailable, bad := stopLoad()
	w := stopWrites()
	if bad != nil || w.bad != "" {
		t.Fatalf("during the resharding: %v %s (never anonymous)", bad, w.bad)
	}
	t.Logf("%d requests during the resharding, %d answered 503; writes: %d sign-ins (%d answered 503), %d IP changes (%d), %d sign-outs (%d)",
		answered, unavailable, w.signIns, w.signIns503, w.moves, w.moves503, w.signOuts, w.signOuts503)
	if w.signIns == w.signIns503 || w.signOuts == w.signOuts503 {
		t.Fatalf("no write got through during the resharding: %+v", w)
	}
	if res := cl.do("GET", "/", "X-Forwarded-For", "203.0.113.60"); res.StatusCode != 200 {
		t.Fatalf("after the resharding: %d", res.StatusCode)
	}
	again := newClient(t, g)
	again.signIn(user)
	// Every write either happened or answered 503: the list holds the
	// first session, the one just made and those whose sign-out failed.
	want := 2 + w.signedInStill
	if code, body := g.adminDo("GET", "/session-auth/users/"+user+"/sessions", ""); code != 200 || strings.Count(body, `"active":true`) != want {
		t.Fatalf("after the resharding, the user's list (want %d active): %d %s", want, code, body)
	}
}

type writeCounts struct {
	signIns, signIns503, moves, moves503, signOuts, signOuts503 int
	signedInStill                                               int // signed in, and the sign-out did not get through
	bad                                                         string
}

// writesUnderLoad keeps writing into user's keys until stopped: a sign-in
// (a new session key beside the user's index and trail), a request from a
// new IP (a touch and a sighting), the admin's list of the user's sessions
// (which prunes the index) and a sign-out, over and over. Each answer must
// be what was asked for or a 503.
func writesUnderLoad(g *gateway, user string) (stop func() writeCounts) {
	done := make(chan struct{})
	result := make(chan writeCounts)
	go func() {
		var w writeCounts
		defer func() { result <- w }()
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			c := newClient(g.t, g)
			res := c.do("POST", "/login?"+url.Values{"user": {user}, "status": {"303"}}.Encode())
			w.signIns++
			ck := sessionCookie(res, c.name)
			switch {
			case res.StatusCode == 503:
				w.signIns503++
				continue
			case res.StatusCode != 303 || ck == nil:
				w.bad = fmt.Sprintf("sign-in answered %d", res.StatusCode)
				return
			}
			c.cookie = ck.Value
			w.signedInStill++
			res = c.do("GET", "/", "X-Forwarded-For", fmt.Sprintf("198.51.100.%d", i%250+1))
			w.moves++
			switch {
			case res.StatusCode == 503:
				w.moves503++
			case res.StatusCode != 200 || res.headers["X-Auth-User"] != user:
				w.bad = fmt.Sprintf("request from a new IP: %d %v", res.StatusCode, res.headers)
				return
			}
			if code, _ := g.adminDo("GET", "/session-auth/users/"+user+"/sessions", ""); code != 200 && code != 503 {
				w.bad = fmt.Sprintf("the admin list answered %d", code)
				return
			}
			res = c.do("POST", "/.auth/logout", "Accept", "application/json")
			w.signOuts++
			switch {
			case res.StatusCode == 503:
				w.signOuts503++
			case res.StatusCode == 204:
				w.signedInStill--
			default:
				w.bad = fmt.Sprintf("sign-out answered %d", res.StatusCode)
				return
			}
		}
	}()
	return func() writeCounts {
		close(done)
		return <-result
	}
}
