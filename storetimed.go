package sessionauth

import (
	"time"

	"github.com/sessionauth/caddy-sessionauth/session"
)

// timed is the handler's view of the store: every operation bounded by
// the store's read timeout (a network store only: an embedded one has
// nothing to wait for, and bounds its own writes), timed in
// store_duration_seconds{op} and, under Caddy's `tracing`, a child span.
func (h *Handler) timed(s session.Store) session.Store {
	t := &session.Timed{Store: s, Kind: h.Store.Type, Observe: h.metrics.storeObserved}
	if !h.Store.embedded() {
		t.Timeout = time.Duration(h.Store.ReadTimeout)
	}
	return t
}
