package integration

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sessionauth/caddy-sessionauth/internal/redisserver"
)

// receiver is a webhook that fails its first `fail` calls, checks the
// signature, and records each notice.
type receiver struct {
	mu      sync.Mutex
	fail    int
	calls   int
	badSig  int
	notices []map[string]string
	addr    string
	srv     *http.Server
}

func newReceiver(t *testing.T, fail int, addr string) *receiver {
	rc := &receiver{fail: fail}
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	rc.addr = l.Addr().String()
	rc.srv = &http.Server{Handler: rc, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = rc.srv.Serve(l) }()
	t.Cleanup(func() { _ = rc.srv.Close() })
	return rc
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.calls++
	if rc.calls <= rc.fail {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	mac := hmac.New(sha256.New, []byte("hook-secret"))
	mac.Write(body)
	if r.Header.Get("X-Signature-256") != "sha256="+hex.EncodeToString(mac.Sum(nil)) {
		rc.badSig++
	}
	var n map[string]string
	_ = json.Unmarshal(body, &n)
	rc.notices = append(rc.notices, n)
}

func (rc *receiver) events() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []string
	for _, n := range rc.notices {
		out = append(out, n["event"]+":"+n["session_id"])
	}
	return out
}

func (rc *receiver) find(event, sessionID string) map[string]string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, n := range rc.notices {
		if n["event"] == event && n["session_id"] == sessionID {
			return n
		}
	}
	return nil
}

func notifySite(store, url string) string {
	return site(store + fmt.Sprintf("\nmax_sessions 0\nnotify %s {\n secret hook-secret\n events new_login new_device revoke ip_change\n }", url))
}

func TestNotifications(t *testing.T) {
	stores(t, func(t *testing.T, store string, _ *redisserver.Server) {
		rc := newReceiver(t, 2, "")
		g := loadCaddy(t, notifySite(store+"\npassword_url /account/password", "http://"+rc.addr+"/hook"), newUpstream(t))
		user := "note-" + randomID()
		first := newGeoClient(t, g, windowsEdge)
		first.signInFrom(berlinIP, user) // the baseline: nothing to tell
		second := newGeoClient(t, g, iPhoneChrome)
		second.signInFrom(berlinIP, user)
		secondID := strings.SplitN(second.cookie, ".", 2)[0]
		firstID := strings.SplitN(first.cookie, ".", 2)[0]
		first.from(newYorkIP, "GET", "/") // ip_change

		waitUntil(t, 20*time.Second, func() bool {
			return rc.find("new_login", secondID) != nil && rc.find("new_device", secondID) != nil && rc.find("ip_change", firstID) != nil
		})
		if rc.badSig != 0 {
			t.Fatalf("%d notices with a bad signature", rc.badSig)
		}
		n := rc.find("new_login", secondID)
		for _, k := range []string{"at", "user_id", "device_name", "browser", "os", "ip_address", "revoke_url"} {
			if n[k] == "" {
				t.Errorf("notice lacks %s: %v", k, n)
			}
		}
		if n["device_name"] != "iPhone" || n["browser"] != "Chrome" || n["user_id"] != user || n["ip_address"] != berlinIP {
			t.Errorf("notice: %v", n)
		}
		if rc.find("new_login", firstID) != nil || rc.find("new_device", firstID) != nil {
			t.Error("the baseline sign-in was notified")
		}

		// "Not you?": GET changes nothing, POST ends the session, once.
		link := strings.Replace(n["revoke_url"], g.base, "", 1)
		if !strings.HasPrefix(link, "/.auth/revoke?token=") {
			t.Fatalf("revoke_url %q", n["revoke_url"])
		}
		anon := newClient(t, g)
		res := anon.do("GET", link)
		if res.StatusCode != 200 || !strings.Contains(res.body, "Sign out this session?") {
			t.Fatalf("link GET: %d", res.StatusCode)
		}
		// It names the account and the site, and lets the user say it was them.
		host := strings.TrimPrefix(g.base, "http://")
		for _, want := range []string{"<strong>" + user + "</strong> on <strong>" + host + "</strong>", `<a href="/">It was me</a>`,
			`then <a href="/account/password">change your password</a>`} {
			if !strings.Contains(res.body, want) {
				t.Errorf("the Not you? page lacks %q:\n%s", want, res.body)
			}
		}
		if second.from(berlinIP, "GET", "/").StatusCode != 200 {
			t.Fatal("GET on the link ended the session")
		}
		res = anon.do("POST", link, "Origin", "https://mail.example", "Sec-Fetch-Site", "cross-site")
		if res.StatusCode != 200 || !strings.Contains(res.body, "Signed out") || sessionCookie(res, "session") != nil ||
			!strings.Contains(res.body, `<a href="/account/password">Change your password on `+host+`</a>`) {
			t.Fatalf("link POST: %d %s", res.StatusCode, res.body)
		}
		if second.from(berlinIP, "GET", "/").StatusCode != 401 {
			t.Fatal("the link did not end the session")
		}
		if res := anon.do("POST", link); res.StatusCode != 410 {
			t.Errorf("replayed link: %d", res.StatusCode)
		}
		forged := link[:len(link)-4] + "0000"
		if res := anon.do("POST", forged); res.StatusCode != 404 && res.StatusCode != 410 {
			t.Errorf("forged link: %d", res.StatusCode)
		}
		if res := anon.do("GET", "/.auth/revoke?token=garbage"); res.StatusCode != 404 {
			t.Errorf("garbage link: %d", res.StatusCode)
		}
		waitUntil(t, 20*time.Second, func() bool { return rc.find("revoke", secondID) != nil })
		if _, body := g.adminDo("GET", "/session-auth/users/"+user+"/events", ""); !strings.Contains(body, `"actor":"link"`) {
			t.Errorf("no revoke event by link: %s", body)
		}
		// Each notice arrived once, though the receiver failed twice.
		seen := map[string]bool{}
		for _, e := range rc.events() {
			if seen[e] {
				t.Errorf("%s delivered twice", e)
			}
			seen[e] = true
		}
	})
}

// With Redis, notices queued while the receiver is down survive a gateway
// restart and are delivered once after it.
func TestNotificationsSurviveRestart(t *testing.T) {
	srv := redisserver.Start(t)
	port := redisserver.FreePort(t)
	url := fmt.Sprintf("http://127.0.0.1:%d/hook", port) // nobody listens yet
	prefix := randomID() + ":"
	store := fmt.Sprintf("store redis redis://%s {\n key_prefix %s\n }", srv.Addr, prefix)
	// The keys of the webhook's channel (session.Redis.outboxKeys): the
	// stream of due deliveries and the set of those waiting for a retry,
	// under a hash tag of 8 bytes of the target's SHA-256.
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { rdb.Close() })
	sum := sha256.Sum256([]byte(url))
	channel := prefix + "{notify:" + hex.EncodeToString(sum[:8]) + "}"
	queued := func() (due, retrying int64) {
		due, _ = rdb.XLen(context.Background(), channel+":q").Result()
		retrying, _ = rdb.ZCard(context.Background(), channel+":r").Result()
		return due, retrying
	}
	up := newUpstream(t)
	g := loadCaddy(t, notifySite(store, url), up)
	user := "restart-" + randomID()
	var ids []string
	for i := 0; i < 3; i++ {
		c := newClient(t, g)
		c.signIn(user)
		ids = append(ids, strings.SplitN(c.cookie, ".", 2)[0])
	}
	// The receiver's channel fails and its notices wait, one at a time
	// tried again; a delivery cut short by the stop goes back to the queue.
	waitUntil(t, 20*time.Second, func() bool { _, retrying := queued(); return retrying > 0 })
	stopCaddy()

	rc := newReceiver(t, 0, fmt.Sprintf("127.0.0.1:%d", port))
	g = loadCaddy(t, notifySite(store, url), up)
	waitUntil(t, 20*time.Second, func() bool {
		return rc.find("new_login", ids[1]) != nil && rc.find("new_login", ids[2]) != nil
	})
	// Once the outbox is empty nothing more can arrive: then count.
	waitUntil(t, 20*time.Second, func() bool { due, retrying := queued(); return due == 0 && retrying == 0 })
	seen := map[string]int{}
	for _, e := range rc.events() {
		seen[e]++
	}
	for e, n := range seen {
		if n != 1 {
			t.Errorf("%s delivered %d times (all: %v)", e, n, rc.events())
		}
	}
	_ = g
}

// A receiver that never answers: requests go on as if it were not there.
func TestHangingReceiverDelaysNothing(t *testing.T) {
	hang := make(chan struct{})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-hang })}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { close(hang); _ = srv.Close() })
	g := loadCaddy(t, notifySite("store memory", "http://"+l.Addr().String()+"/hook"), newUpstream(t))
	user := "hang-" + randomID()
	for i := 0; i < 5; i++ { // each sign-in after the first queues new_login and new_device
		c := newClient(t, g)
		c.signIn(user)
		if res := c.do("GET", "/"); res.StatusCode != 200 {
			t.Fatalf("request %d with a hanging receiver: %d", i, res.StatusCode)
		}
	}
	if code, _ := g.adminDo("DELETE", "/session-auth/users/"+user+"/sessions", ""); code != 200 {
		t.Fatalf("revoking (which notifies) with a hanging receiver: %d", code)
	}
}
