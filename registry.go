package sessionauth

import (
	"sync"

	"github.com/sessionauth/caddy-sessionauth/session"
)

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

// forgetEverywhere drops ended sessions from every handler's grace and session caches,
// so that a revocation made here is never undone by grace.
func forgetEverywhere(ids ...string) {
	running.Lock()
	defer running.Unlock()
	for _, h := range running.handlers {
		h.forget(ids...)
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
		ms := mintedSite{Site: h.site, SetCookie: h.siteCookie(token, h.policy.Lifetime).String()}
		if i, ok := at[h.site]; ok {
			out[i] = ms
			continue
		}
		at[h.site] = len(out)
		out = append(out, ms)
	}
	return out
}
