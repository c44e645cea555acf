package sessionauth

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/sessionauth/caddy-sessionauth/session"
)

// Long-lived connections (SPEC section 12): when a session ends, its
// upgraded connections (WebSocket) through this gateway are closed. Only
// upgrades are tracked, from the moment the proxy hijacks the client's
// connection; a plain request costs one header lookup.

// isUpgrade: the client asks to switch protocols (Connection: upgrade).
func isUpgrade(r *http.Request) bool {
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

// socketWriter hands the proxy the client's connection wrapped, so that
// the connection is known under its session for as long as it is open.
type socketWriter struct {
	http.ResponseWriter
	h *Handler
	s *session.Session
}

func (w *socketWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Hijack is where the upgrade takes the connection over: from here on it
// is closed when the session ends.
func (w *socketWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	w.h.watchRevocations()
	return sockets.add(w.s.ID, conn, w.h.policy.ExpiresAt(w.s), w.h.now()), brw, nil
}

// socketTracker knows, process-wide, the open upgraded connections of
// each session: a session ended through any handler (or announced by
// another gateway on the store's revocation channel) closes them all.
type socketTracker struct {
	mu        sync.Mutex
	bySession map[string]map[*trackedConn]struct{}
}

var sockets = &socketTracker{bySession: map[string]map[*trackedConn]struct{}{}}

type trackedConn struct {
	net.Conn
	id    string
	once  sync.Once
	timer *time.Timer
}

// Close closes the connection once and forgets it.
func (c *trackedConn) Close() error {
	err := net.ErrClosed
	c.once.Do(func() {
		err = c.Conn.Close()
		c.timer.Stop()
		sockets.remove(c)
	})
	return err
}

// add tracks conn under session id until it closes, and closes it when
// the session runs out of time (its lifetime: the connection itself is
// activity, so the idle timeout does not end it).
func (t *socketTracker) add(id string, conn net.Conn, expires, now time.Time) *trackedConn {
	c := &trackedConn{Conn: conn, id: id}
	t.mu.Lock()
	set := t.bySession[id]
	if set == nil {
		set = map[*trackedConn]struct{}{}
		t.bySession[id] = set
	}
	set[c] = struct{}{}
	c.timer = time.AfterFunc(max(expires.Sub(now), 0), func() { _ = c.Close() })
	t.mu.Unlock()
	return c
}

func (t *socketTracker) remove(c *trackedConn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if set := t.bySession[c.id]; set != nil {
		delete(set, c)
		if len(set) == 0 {
			delete(t.bySession, c.id)
		}
	}
}

// closeSessions closes every tracked connection of the ended sessions.
func (t *socketTracker) closeSessions(ids ...string) {
	var doomed []*trackedConn
	t.mu.Lock()
	for _, id := range ids {
		for c := range t.bySession[id] {
			doomed = append(doomed, c)
		}
	}
	t.mu.Unlock()
	for _, c := range doomed {
		_ = c.Close()
	}
}

// watchRevocations subscribes, on the first upgraded connection through a
// handler on Redis, to the store's revocation channel, so that sessions
// ended at other gateways close their connections here too. The embedded
// stores are one process: every end passes through forget.
func (h *Handler) watchRevocations() {
	w := h.socketWatch
	if w == nil || h.redisClient == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.hub == nil && !w.done {
		hub, err := acquireHub(h, h.redisClient)
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
