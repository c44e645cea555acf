package sessionauth

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"go.uber.org/zap"

	"github.com/sessionauth/caddy-sessionauth/session"
)

// Long-lived connections (SPEC section 12): when a session ends, its
// upgraded connections through this gateway are closed: a WebSocket over
// HTTP/1.1, which the proxy takes over (Hijack), and an extended CONNECT
// over HTTP/2 or HTTP/3 (RFC 8441, RFC 9220), a stream the proxy copies
// without a hijack. Each is tracked from before it is forwarded, so that
// an end while the upstream is still answering reaches it too; a plain
// request costs one header lookup.

// isUpgrade: the client asks to switch protocols (Connection: upgrade) or
// to open a tunnel (CONNECT; with :protocol, a WebSocket over HTTP/2 or
// HTTP/3).
func isUpgrade(r *http.Request) bool {
	if r.Method == http.MethodConnect {
		return true
	}
	if r.Header.Get("Upgrade") == "" {
		return false
	}
	for _, line := range r.Header.Values("Connection") {
		for tok := range strings.SplitSeq(line, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), "upgrade") {
				return true
			}
		}
	}
	return false
}

// trackUpgrade registers the upgrade r under its session before it goes
// to the upstream, and gives the request a context of its own: ending the
// session cancels that context (the proxy then closes both sides, also
// while it still waits for the upstream's answer), closes a CONNECT's
// stream and a connection the proxy took over. The func returned is
// called when the handler returns.
func (h *Handler) trackUpgrade(w http.ResponseWriter, r *http.Request, s *session.Session) (http.ResponseWriter, *http.Request, func()) {
	ctx, cancel := context.WithCancel(r.Context())
	r = r.WithContext(ctx)
	sk := &socket{id: s.ID, h: h, cancel: cancel}
	if r.Method == http.MethodConnect && r.ProtoMajor >= 2 {
		sk.stream = r.Body // the client's side of the stream; no hijack comes
	}
	sockets.add(sk, h.policy.ExpiresAt(s), h.now())
	// After add: a first subscription asks the store about sk's session
	// once it listens (an end before that was announced to nobody).
	h.watchRevocations()
	return &socketWriter{ResponseWriter: w, sock: sk, r: r}, r, sk.served
}

// socketWriter hands the proxy the client's connection wrapped, so that
// the connection stays known under its session for as long as it is open.
type socketWriter struct {
	http.ResponseWriter
	sock     *socket
	r        *http.Request
	answered bool // a status was written
	refused  bool // ... and it was the ended session's
}

func (w *socketWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// WriteHeader: an upgrade whose session ended before the upstream's
// answer is answered as any request of an ended session (not with the
// proxy's 499 for a cancelled request, nor with the upstream's 101).
func (w *socketWriter) WriteHeader(code int) {
	informational := code >= 100 && code < 200 && code != http.StatusSwitchingProtocols
	if !w.answered && !informational {
		w.answered = true
		if w.sock.isClosed() {
			w.refused = true
			_ = w.sock.h.unauthenticated(w.ResponseWriter, w.r, true, "")
			return
		}
	}
	if !w.refused {
		w.ResponseWriter.WriteHeader(code)
	}
}

func (w *socketWriter) Write(b []byte) (int, error) {
	if !w.answered {
		w.WriteHeader(http.StatusOK)
	}
	if w.refused {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

// errSessionEnded refuses a hijack whose session ended while the upstream
// was answering.
var errSessionEnded = errors.New("the session ended while the upgrade was being answered")

// Hijack is where an HTTP/1.1 upgrade takes the connection over: from
// here on the connection outlives the handler, and is closed when the
// session ends.
func (w *socketWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.refused || w.sock.isClosed() {
		return nil, nil, errSessionEnded
	}
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	tc, ok := w.sock.hijacked(conn)
	if !ok {
		_ = conn.Close()
		return nil, nil, errSessionEnded
	}
	return tc, brw, nil
}

// socket is one upgrade of a session, from before it is forwarded until
// the handler returns or, once hijacked, until its connection closes.
type socket struct {
	id     string
	h      *Handler
	cancel context.CancelFunc
	stream io.Closer // an extended CONNECT's request body
	timer  *time.Timer

	mu    sync.Mutex
	conn  net.Conn // once hijacked
	ended bool     // closed: the session ended, or the socket is done
}

// hijacked records the connection the proxy took over; false when the
// socket was closed before.
func (sk *socket) hijacked(conn net.Conn) (*trackedConn, bool) {
	sk.mu.Lock()
	defer sk.mu.Unlock()
	if sk.ended {
		return nil, false
	}
	sk.conn = conn
	return &trackedConn{Conn: conn, sock: sk}, true
}

func (sk *socket) isClosed() bool {
	sk.mu.Lock()
	defer sk.mu.Unlock()
	return sk.ended
}

// served is called when the handler returns: an upgrade that was not
// hijacked is over; a hijacked connection lives on until it closes.
func (sk *socket) served() {
	sk.mu.Lock()
	over := sk.conn == nil && !sk.ended
	sk.ended = sk.ended || over
	sk.mu.Unlock()
	if over {
		sk.cancel()
		sk.untrack()
	}
}

// close ends the socket once: its context, stream and connection. It
// answers the connection's Close error, net.ErrClosed when it was closed
// already.
func (sk *socket) close() error {
	sk.mu.Lock()
	if sk.ended {
		sk.mu.Unlock()
		return net.ErrClosed
	}
	sk.ended = true
	conn := sk.conn
	sk.mu.Unlock()
	sk.cancel()
	if sk.stream != nil {
		_ = sk.stream.Close()
	}
	var err error
	if conn != nil {
		err = conn.Close()
	}
	sk.untrack()
	return err
}

func (sk *socket) untrack() {
	if sk.timer != nil {
		sk.timer.Stop()
	}
	sockets.remove(sk)
}

// trackedConn is a hijacked connection: closing it ends its socket.
type trackedConn struct {
	net.Conn
	sock *socket
}

func (c *trackedConn) Close() error { return c.sock.close() }

// socketTracker knows, process-wide, the open upgrades of each session: a
// session ended through any handler (or announced by another gateway on
// the store's revocation channel) closes them all. It remembers the ids
// of recently ended sessions, so that an upgrade registered just after
// its session ended (authenticated before the end, registered after it)
// is closed at once.
type socketTracker struct {
	mu        sync.Mutex
	bySession map[string]map[*socket]struct{}
	ended     *lru.Cache[string, struct{}]
}

// recentlyEnded bounds the ids remembered: an upgrade is registered
// within one store round trip of its authentication, and fewer sessions
// than this end meanwhile.
const recentlyEnded = 65536

var sockets = newSocketTracker()

func newSocketTracker() *socketTracker {
	ended, _ := lru.New[string, struct{}](recentlyEnded) // errors only for a size < 1
	return &socketTracker{bySession: map[string]map[*socket]struct{}{}, ended: ended}
}

// add tracks sk under its session, and closes it when the session runs
// out of time (its lifetime: the connection itself is activity, so the
// idle timeout does not end it), or at once when the session ended
// already.
func (t *socketTracker) add(sk *socket, expires, now time.Time) {
	t.mu.Lock()
	if t.ended.Contains(sk.id) {
		t.mu.Unlock()
		_ = sk.close()
		return
	}
	set := t.bySession[sk.id]
	if set == nil {
		set = map[*socket]struct{}{}
		t.bySession[sk.id] = set
	}
	set[sk] = struct{}{}
	sk.timer = time.AfterFunc(max(expires.Sub(now), 0), func() { _ = sk.close() })
	t.mu.Unlock()
}

func (t *socketTracker) remove(sk *socket) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if set := t.bySession[sk.id]; set != nil {
		delete(set, sk)
		if len(set) == 0 {
			delete(t.bySession, sk.id)
		}
	}
}

// closeSessions closes every tracked upgrade of the ended sessions, and
// remembers them for upgrades still on their way to being registered.
func (t *socketTracker) closeSessions(ids ...string) {
	var doomed []*socket
	t.mu.Lock()
	for _, id := range ids {
		t.ended.Add(id, struct{}{})
		for sk := range t.bySession[id] {
			doomed = append(doomed, sk)
		}
	}
	t.mu.Unlock()
	for _, sk := range doomed {
		_ = sk.close()
	}
}

// recheck asks the store about every session with an upgrade on the
// store storeKey, and closes those that ended: revocations announced
// while the revocation channel was not listened to (before the first
// subscription, or while the link was down) were not heard.
func (t *socketTracker) recheck(storeKey string) {
	byID := map[string]*Handler{}
	t.mu.Lock()
	for id, set := range t.bySession {
		for sk := range set {
			if sk.h.storeKey == storeKey {
				byID[id] = sk.h
			}
		}
	}
	t.mu.Unlock()
	go func() {
		for id, h := range byID { // one at a time: a reconnect is no flood
			h.closeIfEnded(id)
		}
	}()
}

// closeIfEnded closes the upgrades of session id if the store says it is
// no longer active; a store that cannot answer ends nothing.
func (h *Handler) closeIfEnded(id string) {
	ctx := context.Background()
	s, err := h.store.Get(ctx, id)
	switch {
	case errors.Is(err, session.ErrNotFound):
	case err != nil:
		h.logger.Warn("checking an upgraded connection's session", zap.Error(err))
		return
	case s.Active() && !h.policy.Expired(s, h.now()):
		return
	}
	sockets.closeSessions(id)
}

// watchRevocations subscribes, on the first upgrade through a handler on
// Redis, to the store's revocation channel, so that sessions ended at
// other gateways close their connections here too. The embedded stores
// are one process: every end passes through forget.
func (h *Handler) watchRevocations() {
	w := h.socketWatch
	if w == nil || h.feed == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.hub == nil && !w.done {
		hub, err := acquireHub(h, h.feed)
		if err != nil {
			h.logger.Error("listening for revocations at other gateways", zap.Error(err))
			return
		}
		w.hub = hub
	}
}

// release gives the handler's hold on the channel back, for good.
func (w *revocationWatch) release(h *Handler) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.done = true
	if w.hub == nil {
		return nil
	}
	w.hub = nil
	return releaseHub(h)
}

// revocationWatch is a handler's hold on its store's revocation channel.
type revocationWatch struct {
	mu   sync.Mutex
	hub  *revocationHub
	done bool // the handler was cleaned up: take no new hold
}
