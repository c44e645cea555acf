package integration

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/sessionauth/caddy-sessionauth/internal/redisserver"
	"github.com/sessionauth/caddy-sessionauth/session"
)

// echoUpstream is a WebSocket app at /ws that echoes every message; its
// other paths are the test upstream's (the hand-off at /login).
func echoUpstream(t *testing.T) string {
	t.Helper()
	plain := &testUpstream{calls: map[string]int{}}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ws" {
			plain.ServeHTTP(w, r)
			return
		}
		conn, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer conn.CloseNow()
		for {
			typ, msg, err := conn.Read(r.Context())
			if err != nil {
				return
			}
			if conn.Write(r.Context(), typ, msg) != nil {
				return
			}
		}
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return l.Addr().String()
}

// openSocket connects through the gateway with c's cookie and checks that
// the echo works.
func openSocket(t *testing.T, c *client) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, res, err := websocket.Dial(ctx, strings.Replace(c.g.base, "http://", "ws://", 1)+"/ws",
		&websocket.DialOptions{HTTPHeader: http.Header{"Cookie": {c.name + "=" + c.cookie}}})
	if err != nil {
		t.Fatalf("dialling through the gateway: %v (%v)", err, res)
	}
	if err := conn.Write(ctx, websocket.MessageText, []byte("ping")); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := conn.Read(ctx); err != nil || string(msg) != "ping" {
		t.Fatalf("echo: %q %v", msg, err)
	}
	return conn
}

// closedWithin2s waits for the socket to be closed by the gateway, within
// the SPEC's 2 s, and says how long it took.
func closedWithin2s(t *testing.T, conn *websocket.Conn, since time.Time) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, _, err := conn.Read(ctx)
	took := time.Since(since)
	if err == nil || ctx.Err() != nil {
		t.Fatalf("the socket is still open %s after its session ended (%v)", took, err)
	}
	return took
}

// A WebSocket's session signed out in another browser, through the same
// gateway: the upgraded connection closes; another session's stays open.
func TestWebSocketClosesOnSignOut(t *testing.T) {
	stores(t, func(t *testing.T, store string, _ *redisserver.Server) {
		g := loadCaddy(t, site(store+"\nmax_sessions 0"), &testUpstream{addr: echoUpstream(t)})
		user := "ws-" + randomID()
		phone, laptop, other := newClient(t, g), newClient(t, g), newClient(t, g)
		phone.signIn(user)
		laptop.signIn(user)
		other.signIn("ws-other-" + randomID())
		sock, keep := openSocket(t, phone), openSocket(t, other)
		defer keep.CloseNow()

		csrf := laptop.do("GET", "/.auth/me").Header.Get("X-CSRF-Token")
		start := time.Now()
		if r := laptop.do("POST", "/.auth/sessions/revoke-others", "X-CSRF-Token", csrf, "Accept", "application/json"); r.StatusCode != 204 {
			t.Fatalf("sign out others: %d", r.StatusCode)
		}
		t.Logf("%s: socket closed %s after the sign-out elsewhere", t.Name(), closedWithin2s(t, sock, start))
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := keep.Write(ctx, websocket.MessageText, []byte("still")); err != nil {
			t.Fatalf("another session's socket: %v", err)
		}
		if _, msg, err := keep.Read(ctx); err != nil || string(msg) != "still" {
			t.Fatalf("another session's socket: %q %v", msg, err)
		}
		// A new upgrade on the ended session is refused outright.
		ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel2()
		if _, res, err := websocket.Dial(ctx2, strings.Replace(g.base, "http://", "ws://", 1)+"/ws",
			&websocket.DialOptions{HTTPHeader: http.Header{"Cookie": {"session=" + phone.cookie}}}); err == nil || res == nil || res.StatusCode != 401 {
			t.Fatalf("upgrade on an ended session: %v %v", err, res)
		}
	})
}

// The session ends at another gateway sharing the Redis store: the
// revocation broadcast closes the socket here.
func TestWebSocketClosesOnRevocationElsewhere(t *testing.T) {
	srv := redisserver.Start(t)
	prefix := randomID() + ":"
	g := loadCaddy(t, site(fmt.Sprintf("store redis redis://%s {\n key_prefix %s\n }", srv.Addr, prefix)), &testUpstream{addr: echoUpstream(t)})
	rc := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rc.Close()
	elsewhere := session.NewRedis(rc, prefix, nil) // the other gateway's store
	c := newClient(t, g)
	c.signIn("ws-far-" + randomID())
	sock := openSocket(t, c)
	// The subscription starts with the first upgrade; let it settle.
	waitUntil(t, 5*time.Second, func() bool {
		n, _ := rc.PubSubNumSub(context.Background(), session.RevocationChannel(prefix)).Result()
		return n[session.RevocationChannel(prefix)] > 0
	})
	id := strings.SplitN(c.cookie, ".", 2)[0]
	start := time.Now()
	if _, err := elsewhere.End(context.Background(), id, time.Now(), session.EndRevoked, session.ActorAdmin, testPolicy); err != nil {
		t.Fatal(err)
	}
	t.Logf("socket closed %s after the revocation at the other gateway", closedWithin2s(t, sock, start))
}
