package sessionauth

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"go.uber.org/zap"

	"github.com/sessionauth/caddy-sessionauth/session"
)

// sessionCache keeps sessions this process validated for `cache`, so that
// requests between two touches cost no store round trip. It answers only
// "valid, nothing to write": anything else (a touch due, an IP change, an
// expiry in its view, a different secret) goes to the store, so idle and
// lifetime checks stay exact. Revocations reach it over Redis pub/sub;
// while that link is down it is flushed and bypassed.
type sessionCache struct {
	ttl time.Duration
	lru *lru.Cache[string, cacheEntry]
	hub *revocationHub
}

type cacheEntry struct {
	s    *session.Session
	hash [32]byte
	at   time.Time
}

const cacheSize = 100_000

func newSessionCache(ttl time.Duration, hub *revocationHub) *sessionCache {
	c, _ := lru.New[string, cacheEntry](cacheSize) // errors only for a size < 1
	return &sessionCache{ttl: ttl, lru: c, hub: hub}
}

func (c *sessionCache) get(id string, hash [32]byte, ip string, now time.Time, p session.Policy) (*session.Session, bool) {
	if c == nil || !c.hub.healthy() {
		return nil, false
	}
	e, ok := c.lru.Get(id)
	if !ok || e.hash != hash || now.Sub(e.at) >= c.ttl || !e.s.Active() || p.Expired(e.s, now) || p.TouchDue(e.s, now, ip) {
		return nil, false
	}
	return e.s, true
}

func (c *sessionCache) put(s *session.Session, hash [32]byte, now time.Time) {
	if c != nil && c.hub.healthy() {
		c.lru.Add(s.ID, cacheEntry{s: s, hash: hash, at: now})
	}
}

func (c *sessionCache) drop(ids ...string) {
	if c == nil {
		return
	}
	for _, id := range ids {
		c.lru.Remove(id)
	}
}

// revocationHub listens on the store's revocation channel for the caches
// of this process that use the store.
type revocationHub struct {
	key    string // the store's, as in storePool
	feed   session.RevocationFeed
	logger *zap.Logger

	mu     sync.Mutex
	caches map[*sessionCache]struct{} // of the handlers using the hub
	ok     atomic.Bool
	cancel context.CancelFunc
	done   chan struct{}
}

// Destruct stops listening once no handler's cache uses the hub.
func (hub *revocationHub) Destruct() error {
	hub.cancel()
	<-hub.done
	return nil
}

func (hub *revocationHub) healthy() bool { return hub != nil && hub.ok.Load() }

// setHealthy flips the link state; every change flushes the caches, since
// revocations may have been missed while the link was down.
func (hub *revocationHub) setHealthy(ok bool) {
	if hub.ok.Load() == ok {
		return
	}
	hub.mu.Lock()
	for c := range hub.caches {
		c.lru.Purge()
	}
	hub.mu.Unlock()
	hub.ok.Store(ok)
	if ok {
		sockets.recheck(hub.key) // ends announced while nobody listened
		hub.logger.Info("session cache on: revocation channel subscribed")
	} else {
		hub.logger.Warn("session cache off until the revocation channel is back: every request goes to the store")
	}
}

func (hub *revocationHub) dropEverywhere(ids []string) {
	hub.mu.Lock()
	defer hub.mu.Unlock()
	for c := range hub.caches {
		c.drop(ids...)
	}
}

// heard acts on a message of the revocation channel: the ids of ended
// sessions, whose cache entries and connections go, and ids marked as
// changed (session.ChangedMark), whose cache entries alone go.
func (hub *revocationHub) heard(payload string) {
	var drop, ended []string
	for _, id := range strings.Split(payload, ",") {
		if changed, ok := strings.CutPrefix(id, session.ChangedMark); ok {
			drop = append(drop, changed)
			continue
		}
		drop = append(drop, id)
		ended = append(ended, id)
	}
	hub.dropEverywhere(drop)
	sockets.closeSessions(ended...)
}

func (hub *revocationHub) run(ctx context.Context) {
	defer close(hub.done)
	hub.feed.FollowRevocations(ctx, hub.setHealthy, hub.heard)
}

// attachCache gives h its cache, on the store's hub (started if needed).
// With an embedded store (file, memory) there is nothing to save: no cache.
func attachCache(h *Handler, feed session.RevocationFeed) error {
	if h.Cache <= 0 || feed == nil {
		return nil
	}
	hub, err := loadRevocationHub(h.storeKey, feed, h.logger)
	if err != nil {
		return err
	}
	h.cache = newSessionCache(time.Duration(h.Cache), hub)
	hub.mu.Lock()
	hub.caches[h.cache] = struct{}{}
	hub.mu.Unlock()
	return nil
}

// acquireHub is the store's revocation hub for h's upgraded connections,
// started if needed; releaseHub gives it back.
func acquireHub(h *Handler, feed session.RevocationFeed) (*revocationHub, error) {
	return loadRevocationHub(h.storeKey, feed, h.logger)
}

func releaseHub(h *Handler) error {
	_, err := revocationHubPool.Delete(h.storeKey)
	return err
}

func detachCache(h *Handler) error {
	if h.cache == nil {
		return nil
	}
	hub := h.cache.hub
	hub.mu.Lock()
	delete(hub.caches, h.cache)
	hub.mu.Unlock()
	_, err := revocationHubPool.Delete(h.storeKey)
	return err
}
