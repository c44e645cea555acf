package sessionauth

import (
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/sessionauth/caddy-sessionauth/session"
)

// graceCache remembers the sessions this process validated, for
// `store_unavailable grace`: while the store cannot answer, a session
// validated here within the grace period is still accepted (and marked
// degraded). A session this process has not seen is never accepted.
//
// It is a size-bounded LRU (a full cache forgets the session seen least
// recently, in O(1)), with the period checked on read against the
// handler's clock. Not golang-lru's expirable LRU: that one reads
// time.Now, which tests and the handler's injected clock cannot steer,
// and starts a sweeping goroutine that never ends, one more for every
// config reload.
type graceCache struct {
	entries *lru.Cache[string, graceEntry]
	period  time.Duration
}

type graceEntry struct {
	s    *session.Session
	hash [32]byte
	at   time.Time
}

const maxGraceEntries = 200_000

func newGraceCache(period time.Duration, size int) *graceCache {
	entries, _ := lru.New[string, graceEntry](size) // errors only for a size < 1
	return &graceCache{entries: entries, period: period}
}

// seen records a session proven with hash at now.
func (g *graceCache) seen(s *session.Session, hash [32]byte, now time.Time) {
	if g == nil {
		return
	}
	g.entries.Add(s.ID, graceEntry{s: s, hash: hash, at: now})
}

// forget drops a session this process ended.
func (g *graceCache) forget(id string) {
	if g == nil {
		return
	}
	g.entries.Remove(id)
}

// accept returns the session when it was validated here within the
// period, with the same secret, and is still within its lifetime and idle
// timeout as last seen.
func (g *graceCache) accept(id string, hash [32]byte, now time.Time, p session.Policy) *session.Session {
	if g == nil {
		return nil
	}
	e, ok := g.entries.Peek(id)
	if !ok || e.hash != hash || now.Sub(e.at) > g.period || p.Expired(e.s, now) {
		return nil
	}
	return e.s
}
