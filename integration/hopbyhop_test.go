package integration

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/sessionauth/caddy-sessionauth/signature"
)

// identityAfterIPChange signs alice in from 127.0.0.1 and returns the
// identity headers the upstream gets from 203.0.113.5 with no tricks: the
// risk flags are all there.
func identityAfterIPChange(t *testing.T, c *client) map[string]string {
	t.Helper()
	c.signIn("alice", "roles", "dev")
	want := c.do("GET", "/app", "X-Forwarded-For", "203.0.113.5").headers
	if want["X-Auth-Risk"] != "ip-changed" || want["X-Auth-Ip-Changed"] != "true" || want["X-Auth-User"] != "alice" {
		t.Fatalf("no risk flags to lose: %v", want)
	}
	return want
}

// sameIdentity reports what differs between the identity headers the
// upstream got and those it should have got.
func sameIdentity(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	for name, v := range want {
		if !strings.HasPrefix(name, "X-Auth-") {
			continue
		}
		if g, ok := got[name]; !ok || g != v && name != "X-Auth-Signature" {
			t.Errorf("%s: the upstream saw %s = %q (present %v), want %q", what, name, g, ok, v)
		}
	}
}

// A client that names identity headers in Connection must not get Caddy's
// reverse_proxy to delete them after session_auth set them (a stolen
// session would skip the app's step-up on X-Auth-Risk). Other tokens keep
// their hop-by-hop meaning.
func TestConnectionCannotRemoveIdentity(t *testing.T) {
	up := newUpstream(t)
	g := loadCaddy(t, site("store memory\nsign_headers s3cret"), up)
	c := newClient(t, g)
	want := identityAfterIPChange(t, c)
	res := c.do("GET", "/app", "X-Forwarded-For", "203.0.113.5",
		"Connection", "X-Auth-Risk, X-Auth-Ip-Changed",
		"Connection", "x_auth_ip ,X.Auth.Roles,X-AUTH-USER, X-Auth-Signature, X-Auth-Session-Created, keep-alive, X-Test-Hop",
		"X-Test-Hop", "dropped by the proxy")
	if res.StatusCode != 200 {
		t.Fatalf("GET /app: %d %s", res.StatusCode, res.body)
	}
	sameIdentity(t, "Connection naming identity headers", res.headers, want)
	if _, ok := res.headers["X-Test-Hop"]; ok {
		t.Error("X-Test-Hop, named in Connection, reached the upstream: the Connection header lost its other tokens")
	}
	// The signature still verifies: nothing it covers went missing.
	r := up.lastRequest()
	if err := signature.Verify(&http.Request{Method: r.Method, Host: r.Host, URL: mustURI(t, r.RequestURI), Header: r.Header}, []byte("s3cret"), time.Minute); err != nil {
		t.Errorf("signature after Connection: %v", err)
	}
}

// A WebSocket upgrade ("Connection: Upgrade") still works, and an identity
// header named beside Upgrade still reaches the app.
func TestConnectionUpgradeKeepsIdentity(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ws := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" {
			http.Error(w, "not an upgrade", http.StatusBadRequest)
			return
		}
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		fmt.Fprintf(rw, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
		rw.Flush()
		line, _ := rw.ReadString('\n')
		fmt.Fprintf(rw, "%s user=%s risk=%s\n", strings.TrimSpace(line), r.Header.Get("X-Auth-User"), r.Header.Get("X-Auth-Risk"))
		rw.Flush()
	})}
	go func() { _ = ws.Serve(l) }()
	t.Cleanup(func() { _ = ws.Close() })
	up := newUpstream(t)
	text := strings.Replace(site("store memory"), "reverse_proxy {UPSTREAM}", "reverse_proxy /ws "+l.Addr().String()+"\n\treverse_proxy {UPSTREAM}", 1)
	g := loadCaddy(t, text, up)
	c := newClient(t, g)
	identityAfterIPChange(t, c)

	conn, err := net.DialTimeout("tcp", g.base[len("http://"):], 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: %s\r\nCookie: session=%s\r\nX-Forwarded-For: 203.0.113.5\r\n"+
		"Connection: Upgrade, X-Auth-Risk, X-Auth-User\r\nUpgrade: websocket\r\n\r\n", g.base[len("http://"):], c.cookie)
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusSwitchingProtocols {
		b, _ := io.ReadAll(res.Body)
		t.Fatalf("upgrade answered %d %s", res.StatusCode, b)
	}
	fmt.Fprintf(conn, "ping\n")
	line, err := br.ReadString('\n')
	if err != nil || line != "ping user=alice risk=ip-changed\n" {
		t.Fatalf("over the upgraded connection: %q %v", line, err)
	}
}

// Request trailers under the prefix never reach the upstream, declared or
// not; other trailers do. Over HTTP/1.1 (raw chunked body) and HTTP/2
// (h2c), where Connection itself cannot be sent.
func TestRequestTrailersCannotCarryIdentity(t *testing.T) {
	t.Run("http1", func(t *testing.T) {
		up := newUpstream(t)
		g := loadCaddy(t, site("store memory"), up)
		c := newClient(t, g)
		want := identityAfterIPChange(t, c)
		conn, err := net.DialTimeout("tcp", g.base[len("http://"):], 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(conn, "POST /app HTTP/1.1\r\nHost: %s\r\nCookie: session=%s\r\nX-Forwarded-For: 203.0.113.5\r\n"+
			"Transfer-Encoding: chunked\r\nTrailer: X-Test-Trailer, X-Auth-User, X_Auth_Risk\r\nConnection: close\r\n\r\n"+
			"5\r\nhello\r\n0\r\nX-Test-Trailer: kept\r\nX-Auth-User: mallory\r\nX_Auth_Risk: none\r\nX-Auth-Roles: superadmin\r\n\r\n",
			g.base[len("http://"):], c.cookie)
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("POST with trailers: %d", res.StatusCode)
		}
		r := up.lastRequest()
		checkTrailers(t, r, want)
	})
	t.Run("h2c", func(t *testing.T) {
		up := newUpstream(t)
		g := loadCaddy(t, strings.Replace(site("store memory"), "\tservers {\n", "\tservers {\n\t\tprotocols h1 h2c\n", 1), up)
		c := newClient(t, g)
		want := identityAfterIPChange(t, c)
		tr := &http.Transport{Protocols: new(http.Protocols)}
		tr.Protocols.SetUnencryptedHTTP2(true)
		t.Cleanup(tr.CloseIdleConnections)
		h2 := &http.Client{Transport: tr, Timeout: 10 * time.Second}

		req, _ := http.NewRequest("POST", g.base+"/app", io.NopCloser(strings.NewReader("hello")))
		req.Header.Set("Cookie", "session="+c.cookie)
		req.Header.Set("X-Forwarded-For", "203.0.113.5")
		req.Header.Set("Te", "trailers")
		req.Trailer = http.Header{"X-Test-Trailer": {"kept"}, "X-Auth-User": {"mallory"}, "X_auth_risk": {"none"}}
		res, err := h2.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 || res.ProtoMajor != 2 {
			t.Fatalf("POST with trailers: %d over %s", res.StatusCode, res.Proto)
		}
		checkTrailers(t, up.lastRequest(), want)

		// Connection is not a field of HTTP/2 (RFC 9113 8.2.2): Go's client
		// will not send it. Should it, the identity must still be whole.
		calls := up.total()
		req, _ = http.NewRequest("GET", g.base+"/app", nil)
		req.Header.Set("Cookie", "session="+c.cookie)
		req.Header.Set("X-Forwarded-For", "203.0.113.5")
		req.Header.Set("Connection", "X-Auth-Risk, X-Auth-Ip-Changed")
		if res, err := h2.Do(req); err == nil {
			res.Body.Close()
			if up.total() > calls {
				got := map[string]string{}
				for k, v := range up.lastRequest().Header {
					got[k] = strings.Join(v, "|")
				}
				sameIdentity(t, "h2 Connection", got, want)
			}
		} else {
			t.Logf("over HTTP/2, Go's client refuses Connection: %v", err)
		}
		// Sent anyway, in raw frames: the request is refused as malformed
		// (4xx or a reset) before it reaches any handler, or reaches the
		// app with the identity whole.
		calls = up.total()
		status, rst := rawH2(t, g.base[len("http://"):], [][2]string{
			{":method", "GET"}, {":scheme", "http"}, {":authority", g.base[len("http://"):]}, {":path", "/app"},
			{"cookie", "session=" + c.cookie}, {"x-forwarded-for", "203.0.113.5"}, {"connection", "X-Auth-Risk, X-Auth-Ip-Changed"},
		})
		switch {
		case up.total() > calls:
			got := map[string]string{}
			for k, v := range up.lastRequest().Header {
				got[k] = strings.Join(v, "|")
			}
			sameIdentity(t, "raw h2 Connection", got, want)
		case strings.HasPrefix(status, "4") || status == "" && rst == http2.ErrCodeProtocol:
			t.Logf("over HTTP/2, a request with Connection is refused: status %q, reset %v", status, rst)
		default:
			t.Errorf("raw h2 request with Connection: status %q, reset %v, and the app saw nothing", status, rst)
		}
	})
}

// rawH2 sends one GET as HTTP/2 with prior knowledge, whatever its fields,
// and returns the stream's status or its reset code.
func rawH2(t *testing.T, addr string, fields [][2]string) (string, http2.ErrCode) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, f := range fields {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	dec := hpack.NewDecoder(4096, nil)
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading frames: %v", err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = fr.WriteSettingsAck()
			}
		case *http2.HeadersFrame:
			hf, err := dec.DecodeFull(f.HeaderBlockFragment())
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range hf {
				if h.Name == ":status" {
					return h.Value, 0
				}
			}
		case *http2.RSTStreamFrame:
			return "", f.ErrCode
		case *http2.GoAwayFrame:
			return "", f.ErrCode
		}
	}
}

func checkTrailers(t *testing.T, r *http.Request, want map[string]string) {
	t.Helper()
	got := map[string]string{}
	for k, v := range r.Header {
		got[k] = strings.Join(v, "|")
	}
	sameIdentity(t, "request with trailers", got, want)
	if r.Trailer.Get("X-Test-Trailer") != "kept" {
		t.Errorf("the other trailer did not reach the upstream: %v (%s)", r.Trailer, r.Proto)
	}
	for k, v := range r.Trailer {
		if signature.HasPrefix(k, "x-auth-") {
			t.Errorf("trailer %s: %q reached the upstream", k, v)
		}
	}
	if strings.Contains(r.Header.Get("Trailer"), "Auth") {
		t.Errorf("the upstream was told of trailer %q", r.Header.Get("Trailer"))
	}
}
