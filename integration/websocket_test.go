package integration

import (
	"context"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/quic-go/quic-go/http3"
	"github.com/redis/go-redis/v9"
	"golang.org/x/net/http2"

	"github.com/sessionauth/caddy-sessionauth/internal/redisserver"
	"github.com/sessionauth/caddy-sessionauth/session"
)

// echoUpstream is a WebSocket app at /ws that echoes every message; its
// other paths are the test upstream's (the hand-off at /login). hold, if
// not nil, runs before an upgrade is answered.
func echoUpstream(t *testing.T, hold func()) string {
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
		if hold != nil {
			hold()
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

// The WebSocket tests run over each protocol a browser may use: HTTP/1.1
// (an upgrade the proxy hijacks), and an extended CONNECT over HTTP/2
// (RFC 8441) or HTTP/3 (RFC 9220), a stream the proxy copies.
var wsProtocols = []string{"h1", "h2", "h3"}

// wsGateway is a gateway for WebSocket tests over proto: plain HTTP for
// h1, HTTPS with Caddy's internal CA (h1, h2 and h3 served) otherwise.
type wsGateway struct {
	*gateway
	proto string
	roots *x509.CertPool // the internal CA, for h2 and h3
}

func loadWSGateway(t *testing.T, proto, options string, up *testUpstream) *wsGateway {
	t.Helper()
	if proto == "h1" {
		return &wsGateway{gateway: loadCaddy(t, site(options), up), proto: proto}
	}
	text := strings.Replace(site(options), "auto_https off", "local_certs\n\tskip_install_trust\n\tauto_https disable_redirects", 1)
	text = strings.Replace(text, "http://127.0.0.1:{PORT} {", "https://127.0.0.1:{PORT} {\n\ttls internal", 1)
	g := &wsGateway{gateway: loadCaddy(t, text, up), proto: proto, roots: x509.NewCertPool()}
	g.base = strings.Replace(g.base, "http://", "https://", 1)
	code, body := g.adminDo("GET", "/pki/ca/local", "")
	var ca struct {
		Root string `json:"root_certificate"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &ca) != nil || !g.roots.AppendCertsFromPEM([]byte(ca.Root)) {
		t.Fatalf("the internal CA: %d %s", code, body)
	}
	// The site's certificate is issued in the background at start.
	c := g.client()
	waitUntil(t, 10*time.Second, func() bool {
		_, err := c.try("GET", "/.auth/me")
		return err == nil
	})
	return g
}

// client is a browser-like client of the gateway, over HTTPS (HTTP/1.1 or
// HTTP/2) when the gateway serves it.
func (g *wsGateway) client() *client {
	c := newClient(g.t, g.gateway)
	if g.roots != nil {
		c.name = "__Host-session"
		c.http.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: g.roots}, ForceAttemptHTTP2: true}
	}
	return c
}

// dial opens a WebSocket to /ws through the gateway with c's cookie, over
// the gateway's protocol.
func (g *wsGateway) dial(ctx context.Context, c *client) (*websocket.Conn, *http.Response, error) {
	opts := &websocket.DialOptions{HTTPHeader: http.Header{"Cookie": {c.name + "=" + c.cookie}}}
	u := strings.Replace(g.base, "http", "ws", 1) + "/ws"
	switch g.proto {
	case "h2":
		// x/net's client: net/http's (Go 1.26), which x/net's is deprecated
		// for, refuses the :protocol pseudo-header of an extended CONNECT.
		//lint:ignore SA1019 the only Go client that sends an extended CONNECT
		h2 := &http2.Transport{TLSClientConfig: &tls.Config{RootCAs: g.roots}}
		opts.HTTPClient = &http.Client{Transport: &extendedConnect{rt: h2, proto: 2}}
	case "h3":
		h3 := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: g.roots}}
		opts.HTTPClient = &http.Client{Transport: &extendedConnect{rt: h3, proto: 3}}
	}
	conn, res, err := websocket.Dial(ctx, u, opts)
	if err == nil && g.proto != "h1" && res.ProtoMajor != map[string]int{"h2": 2, "h3": 3}[g.proto] {
		conn.CloseNow()
		return nil, res, fmt.Errorf("dialled over HTTP/%d, not %s", res.ProtoMajor, g.proto)
	}
	return conn, res, err
}

// extendedConnect carries coder/websocket's HTTP/1.1 handshake as an
// extended CONNECT over HTTP/2 or HTTP/3 (the library speaks only the
// first), and answers it as the 101 the library checks: the stream, the
// request body one way and the response body the other, is the socket.
type extendedConnect struct {
	rt    http.RoundTripper
	proto int
}

func (x *extendedConnect) RoundTrip(req *http.Request) (*http.Response, error) {
	key := req.Header.Get("Sec-WebSocket-Key")
	pr, pw := io.Pipe()
	// The dial's context bounds the handshake only, as with HTTP/1.1's
	// hijacked connection: the stream lives on until it is closed.
	ctx, cancel := context.WithCancel(context.WithoutCancel(req.Context()))
	stop := context.AfterFunc(req.Context(), cancel)
	defer stop()
	out := req.Clone(ctx)
	out.Method, out.Body, out.ContentLength = http.MethodConnect, pr, -1
	for _, h := range []string{"Connection", "Upgrade", "Sec-WebSocket-Key"} {
		out.Header.Del(h)
	}
	if x.proto == 3 {
		out.Proto = "websocket" // quic-go's http3 sends it as :protocol
	} else {
		out.Header.Set(":protocol", "websocket")
	}
	res, err := x.rt.RoundTrip(out)
	if err != nil || res.StatusCode != http.StatusOK {
		pw.Close()
		if err != nil {
			cancel()
		}
		return res, err
	}
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")) // RFC 6455's accept value
	res.StatusCode = http.StatusSwitchingProtocols
	res.Header.Set("Connection", "Upgrade")
	res.Header.Set("Upgrade", "websocket")
	res.Header.Set("Sec-WebSocket-Accept", base64.StdEncoding.EncodeToString(sum[:]))
	res.Body = &streamConn{ReadCloser: res.Body, w: pw, cancel: cancel}
	return res, nil
}

type streamConn struct {
	io.ReadCloser
	w      *io.PipeWriter
	cancel context.CancelFunc
}

func (s *streamConn) Write(p []byte) (int, error) { return s.w.Write(p) }

func (s *streamConn) Close() error {
	s.w.Close()
	err := s.ReadCloser.Close()
	s.cancel()
	return err
}

// openSocket connects through the gateway with c's cookie and checks that
// the echo works.
func (g *wsGateway) openSocket(t *testing.T, c *client) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, res, err := g.dial(ctx, c)
	if err != nil {
		t.Fatalf("dialling through the gateway over %s: %v (%v)", g.proto, err, res)
	}
	echoes(t, conn, "ping")
	return conn
}

func echoes(t *testing.T, conn *websocket.Conn, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := conn.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatalf("writing to the socket: %v", err)
	}
	if _, got, err := conn.Read(ctx); err != nil || string(got) != msg {
		t.Fatalf("echo: %q %v", got, err)
	}
}

// A WebSocket's session signed out in another browser, through the same
// gateway: the upgraded connection closes; another session's stays open.
func TestWebSocketClosesOnSignOut(t *testing.T) {
	for _, proto := range wsProtocols {
		t.Run(proto, func(t *testing.T) {
			stores(t, func(t *testing.T, store string, _ *redisserver.Server) {
				g := loadWSGateway(t, proto, store+"\nmax_sessions 0", &testUpstream{addr: echoUpstream(t, nil)})
				user := "ws-" + randomID()
				phone, laptop, other := g.client(), g.client(), g.client()
				phone.signIn(user)
				laptop.signIn(user)
				other.signIn("ws-other-" + randomID())
				sock, keep := g.openSocket(t, phone), g.openSocket(t, other)
				defer keep.CloseNow()

				csrf := laptop.do("GET", "/.auth/me").Header.Get("X-CSRF-Token")
				start := time.Now()
				if r := laptop.do("POST", "/.auth/sessions/revoke-others", "X-CSRF-Token", csrf, "Accept", "application/json"); r.StatusCode != 204 {
					t.Fatalf("sign out others: %d", r.StatusCode)
				}
				t.Logf("%s: socket closed %s after the sign-out elsewhere", t.Name(), closedWithin2s(t, sock, start))
				echoes(t, keep, "still")
				// A new upgrade on the ended session is refused outright.
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				if _, res, err := g.dial(ctx, phone); err == nil || res == nil || res.StatusCode != 401 {
					t.Fatalf("upgrade on an ended session: %v %v", err, res)
				}
				// Its own sign-out closes the other socket (and no tunnel
				// is left open when Caddy stops).
				start = time.Now()
				if r := other.do("POST", "/.auth/logout", "Accept", "application/json"); r.StatusCode != 204 {
					t.Fatalf("sign-out: %d", r.StatusCode)
				}
				closedWithin2s(t, keep, start)
			})
		})
	}
}

// The session ends at another gateway sharing the Redis store: the
// revocation broadcast closes the socket here.
func TestWebSocketClosesOnRevocationElsewhere(t *testing.T) {
	for _, proto := range wsProtocols {
		t.Run(proto, func(t *testing.T) {
			srv := redisserver.Start(t)
			prefix := randomID() + ":"
			g := loadWSGateway(t, proto, fmt.Sprintf("store redis redis://%s {\n key_prefix %s\n }", srv.Addr, prefix), &testUpstream{addr: echoUpstream(t, nil)})
			rc := redis.NewClient(&redis.Options{Addr: srv.Addr})
			defer rc.Close()
			elsewhere := session.NewRedis(rc, prefix, nil) // the other gateway's store
			c := g.client()
			c.signIn("ws-far-" + randomID())
			sock := g.openSocket(t, c)
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
		})
	}
}

// The session ends at another gateway while this one's link to the
// revocation channel is down, so the announcement reaches nobody: when
// the link is back, the gateway asks the store about the sessions of its
// open sockets, and the socket closes.
func TestWebSocketClosesWhenRevokedWhileNotListening(t *testing.T) {
	for _, proto := range wsProtocols {
		t.Run(proto, func(t *testing.T) {
			srv := redisserver.Start(t)
			prefix := randomID() + ":"
			channel := session.RevocationChannel(prefix)
			g := loadWSGateway(t, proto, fmt.Sprintf("store redis redis://%s {\n key_prefix %s\n }", srv.Addr, prefix), &testUpstream{addr: echoUpstream(t, nil)})
			rc := redis.NewClient(&redis.Options{Addr: srv.Addr})
			defer rc.Close()
			elsewhere := session.NewRedis(rc, prefix, nil)
			ctx := context.Background()
			listening := func() bool {
				n, _ := rc.PubSubNumSub(ctx, channel).Result()
				return n[channel] > 0
			}
			// The gateway subscribes again within a moment: an attempt
			// whose end it heard after all proves nothing, and is repeated.
			for attempt := 1; ; attempt++ {
				c := g.client()
				c.signIn("ws-deaf-" + randomID())
				sock := g.openSocket(t, c)
				waitUntil(t, 5*time.Second, listening)
				if err := rc.ClientKillByFilter(ctx, "TYPE", "pubsub").Err(); err != nil {
					t.Fatal(err)
				}
				for deadline := time.Now().Add(5 * time.Second); listening(); time.Sleep(time.Millisecond) {
					if time.Now().After(deadline) {
						t.Fatal("the gateway's subscription outlived CLIENT KILL")
					}
				}
				start := time.Now()
				id := strings.SplitN(c.cookie, ".", 2)[0]
				if _, err := elsewhere.End(ctx, id, time.Now(), session.EndRevoked, session.ActorAdmin, testPolicy); err != nil {
					t.Fatal(err)
				}
				unheard := !listening()
				took := closedWithin2s(t, sock, start)
				if unheard {
					t.Logf("attempt %d: socket closed %s after a revocation announced to nobody", attempt, took)
					return
				}
				if attempt == 10 {
					t.Fatal("the gateway always subscribed again before the revocation")
				}
			}
		})
	}
}

// A session revoked while the upstream is still answering its upgrade
// (its 101 not sent yet) gets no socket: the upgrade is known under its
// session before it is forwarded, and is answered as any request of an
// ended session.
func TestWebSocketRevokedDuringUpgrade(t *testing.T) {
	for _, proto := range wsProtocols {
		t.Run(proto, func(t *testing.T) {
			stores(t, func(t *testing.T, store string, _ *redisserver.Server) {
				arrived, release := make(chan struct{}), make(chan struct{})
				g := loadWSGateway(t, proto, store+"\nmax_sessions 0", &testUpstream{addr: echoUpstream(t, func() {
					close(arrived)
					<-release
				})})
				user := "ws-race-" + randomID()
				phone, laptop := g.client(), g.client()
				phone.signIn(user)
				laptop.signIn(user)

				type dialled struct {
					conn *websocket.Conn
					res  *http.Response
					err  error
				}
				done := make(chan dialled, 1)
				go func() {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					conn, res, err := g.dial(ctx, phone)
					done <- dialled{conn, res, err}
				}()
				select { // the upgrade waits at the upstream
				case <-arrived:
				case d := <-done:
					t.Fatalf("the upgrade did not reach the upstream: %v %v", d.err, d.res)
				}
				csrf := laptop.do("GET", "/.auth/me").Header.Get("X-CSRF-Token")
				if r := laptop.do("POST", "/.auth/sessions/revoke-others", "X-CSRF-Token", csrf, "Accept", "application/json"); r.StatusCode != 204 {
					t.Fatalf("sign out others: %d", r.StatusCode)
				}
				close(release)
				if d := <-done; d.err == nil || d.res == nil || d.res.StatusCode != 401 {
					if d.conn != nil {
						d.conn.CloseNow()
					}
					t.Fatalf("an upgrade whose session ended while the upstream answered: %v %v", d.err, d.res)
				}
			})
		})
	}
}
