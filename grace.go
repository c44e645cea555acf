package sessionauth

import (
	"sync"
	"time"

	"github.com/sessionauth/caddy-sessionauth/session"
)

// graceCache remembers the sessions this process validated, for
// `store_unavailable grace`: while the store cannot answer, a session
// validated here within the grace period is still accepted (and marked
// degraded). A session this process has not seen is never accepted.
type graceCache struct {
	mu      sync.Mutex
	entries map[string]graceEntry
	period  time.Duration
}

type graceEntry struct {
	s    *session.Session
	hash [32]byte
	at   time.Time
}

const maxGraceEntries = 200_000

func newGraceCache(period time.Duration) *graceCache {
	return &graceCache{entries: make(map[string]graceEntry), period: period}
}

// seen records a session proven with hash at now.
func (g *graceCache) seen(s *session.Session, hash [32]byte, now time.Time) {
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.entries) >= maxGraceEntries {
		for id, e := range g.entries {
			if now.Sub(e.at) > g.period {
				delete(g.entries, id)
			}
		}
		if len(g.entries) >= maxGraceEntries {
			return
		}
	}
	g.entries[s.ID] = graceEntry{s: s, hash: hash, at: now}
}

// forget drops a session this process ended.
func (g *graceCache) forget(id string) {
	if g == nil {
		return
	}
	g.mu.Lock()
	delete(g.entries, id)
	g.mu.Unlock()
}

// accept returns the session when it was validated here within the
// period, with the same secret, and is still within its lifetime and idle
// timeout as last seen.
func (g *graceCache) accept(id string, hash [32]byte, now time.Time, p session.Policy) *session.Session {
	if g == nil {
		return nil
	}
	g.mu.Lock()
	e, ok := g.entries[id]
	g.mu.Unlock()
	if !ok || e.hash != hash || now.Sub(e.at) > g.period || p.Expired(e.s, now) {
		return nil
	}
	return e.s
}
