package sessionauth

// Process-wide state: what outlives one config load and is shared by the
// handlers that serve the same thing.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/sessionauth/caddy-sessionauth/geo"
	"github.com/sessionauth/caddy-sessionauth/session"
)

// storePool shares stores between handlers that name the same one, and
// keeps them across config reloads: the new config loads the store before
// the old one lets go of it.
var storePool = caddy.NewUsagePool()

// pooledStore is a store in the pool; Destruct runs when no config uses it.
type pooledStore struct {
	session.Store
	checked sync.Once // the connection check at start, once per store
}

func (p *pooledStore) Destruct() error {
	return p.Store.Close()
}

// poolKey identifies a store: the same Redis addresses, credentials, db
// and key prefix share one client; the same file is one store; every
// memory store is the same one.
func (c *StoreConfig) poolKey(password string) string {
	switch c.Type {
	case "memory":
		return "memory"
	case "file":
		return "file:" + c.filePath()
	}
	sum := sha256.Sum256([]byte(strings.Join([]string{c.URL, strings.Join(c.Addresses, ","), c.Master,
		c.Username, password, fmt.Sprint(c.DB), c.KeyPrefix, fmt.Sprint(c.PoolSize),
		time.Duration(c.DialTimeout).String(), time.Duration(c.ReadTimeout).String(),
		c.TLSCA, c.TLSCert, c.TLSKey, c.TLSServerName}, "\x00")))
	return "redis:" + hex.EncodeToString(sum[:])
}

// loadStore returns the shared store for c and its pool key.
func loadStore(c *StoreConfig, logger *zap.Logger) (*pooledStore, string, error) {
	password := caddy.NewReplacer().ReplaceAll(c.Password, "")
	key := c.poolKey(password)
	v, loaded, err := storePool.LoadOrNew(key, func() (caddy.Destructor, error) {
		switch c.Type {
		case "memory":
			m, err := session.NewMemory(nil, time.Minute)
			if err != nil {
				return nil, err
			}
			return &pooledStore{Store: m}, nil
		case "file":
			// Opened when the config starts (storeapp.go), not here:
			// `caddy validate` must not take the lock of a running Caddy.
			return &pooledStore{Store: session.NewFile(c.filePath(), nil, session.FileOptions{
				Sweep: time.Minute, WriteTimeout: time.Duration(c.ReadTimeout),
				CheckEvery: fileCheckEvery, Logger: logger.Named("store"),
			})}, nil
		}
		st, err := session.DialRedis(c.redisOptions(password, logger), nil)
		if err != nil {
			return nil, err
		}
		return &pooledStore{Store: st}, nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("loading session store: %w", err)
	}
	switch {
	case loaded:
	case c.Type == "memory":
		logger.Warn("sessions are kept in this process only (store memory): they are lost on restart; use store file to keep them, store redis to run more than one instance")
	case c.Type == "file":
		logger.Info("sessions are kept in a file for this instance only: use store redis to run more than one instance", zap.String("path", c.filePath()))
	}
	return v.(*pooledStore), key, nil
}

// fileCheckEvery is how often the file store checks that its path still
// names the file it has open: a stat call, like the GeoIP watch.
const fileCheckEvery = 2 * time.Second

// geoPool shares one database per file across handlers and config
// reloads; each follows its file for replacements.
var geoPool = caddy.NewUsagePool()

// geoCheckEvery is how often the database file is checked for a
// replacement: a stat call, cheap enough to do often.
const geoCheckEvery = 2 * time.Second

type pooledGeo struct{ *geo.DB }

func (p pooledGeo) Destruct() error { return p.DB.Close() }

// loadGeo opens (or shares) the database at path. A missing or corrupt
// file is a provision error.
func loadGeo(path string, logger *zap.Logger) (*geo.DB, error) {
	v, _, err := geoPool.LoadOrNew(path, func() (caddy.Destructor, error) {
		db, err := geo.Open(path, geoCheckEvery, logger.Named("geoip"))
		if err != nil {
			return nil, err
		}
		return pooledGeo{db}, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(pooledGeo).DB, nil
}

// dispatcherPool holds the notification dispatcher of each store, keyed
// like storePool: one per store in this process while a handler with a
// notify config uses it, kept across reloads.
var dispatcherPool = caddy.NewUsagePool()

// loadDispatcher returns the store's dispatcher (started if needed) with
// h's receiver added; h's Cleanup releases it.
func loadDispatcher(h *Handler) (*dispatcher, error) {
	v, _, err := dispatcherPool.LoadOrNew(h.storeKey, func() (caddy.Destructor, error) {
		d := newDispatcher(h.store, h.logger, h.now)
		d.start()
		return d, nil
	})
	if err != nil {
		return nil, err
	}
	d := v.(*dispatcher)
	d.serve(h.Notify, h.mail, h.metrics)
	return d, nil
}

// revocationHubPool holds the revocation listener of each Redis store
// that a handler with `cache` uses, keyed like storePool.
var revocationHubPool = caddy.NewUsagePool()

func loadRevocationHub(storeKey string, feed session.RevocationFeed, logger *zap.Logger) (*revocationHub, error) {
	v, _, err := revocationHubPool.LoadOrNew(storeKey, func() (caddy.Destructor, error) {
		ctx, cancel := context.WithCancel(context.Background())
		hub := &revocationHub{key: storeKey, feed: feed, logger: logger,
			caches: map[*sessionCache]struct{}{}, cancel: cancel, done: make(chan struct{})}
		go hub.run(ctx)
		return hub, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*revocationHub), nil
}

// running lists the provisioned handlers, in provision order, so that the
// admin API can act on every distinct store of the running config.
var running struct {
	sync.Mutex
	handlers []*Handler
}

func registerHandler(h *Handler) {
	running.Lock()
	defer running.Unlock()
	running.handlers = append(running.handlers, h)
}

func unregisterHandler(h *Handler) {
	running.Lock()
	defer running.Unlock()
	for i, x := range running.handlers {
		if x == h {
			running.handlers = append(running.handlers[:i:i], running.handlers[i+1:]...)
			return
		}
	}
}

// storeRef is one distinct store and a handler that uses it, whose policy
// applies to what the admin API does there.
type storeRef struct {
	store session.Store
	h     *Handler
}

// distinctStores returns each store in use once. During a reload both
// configs are registered; the newest handler of a store speaks for it.
func distinctStores() []storeRef {
	running.Lock()
	defer running.Unlock()
	seen := map[string]int{}
	var out []storeRef
	for _, h := range running.handlers {
		if i, ok := seen[h.storeKey]; ok {
			out[i].h = h
			continue
		}
		seen[h.storeKey] = len(out)
		out = append(out, storeRef{store: h.store, h: h})
	}
	return out
}

// forgetEverywhere drops ended sessions from the grace and session
// caches of every handler of this process, from's included (also when
// it is not running: a test's), so that a revocation made by one is
// never undone by another's grace.
func forgetEverywhere(from *Handler, ids ...string) {
	running.Lock()
	defer running.Unlock()
	seen := false
	for _, h := range running.handlers {
		h.forget(ids...)
		seen = seen || h == from
	}
	if !seen && from != nil {
		from.forget(ids...)
	}
}

// mintedSites is the Set-Cookie of token for each site whose handler
// uses the store storeKey names, in config order; during a reload the
// newest handler of a site speaks for it.
func mintedSites(storeKey, token string) []mintedSite {
	running.Lock()
	defer running.Unlock()
	out := []mintedSite{}
	at := map[string]int{}
	for _, h := range running.handlers {
		if h.storeKey != storeKey {
			continue
		}
		ms := mintedSite{Site: h.site, SetCookie: h.cookies.siteCookie(token, h.policy.Lifetime).String(), ownSignIn: h.SignIn != nil}
		if i, ok := at[h.site]; ok {
			out[i] = ms
			continue
		}
		at[h.site] = len(out)
		out = append(out, ms)
	}
	// Caddy provisions its servers in no set order: sorted, "the first
	// site" (set_cookie) is the same on every run. Minting is for apps
	// that sign users in themselves, so sites without sign_in come first.
	slices.SortStableFunc(out, func(a, b mintedSite) int {
		if a.ownSignIn != b.ownSignIn {
			if b.ownSignIn {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Site, b.Site)
	})
	return out
}
