package sessionauth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sessionauth/caddy-sessionauth/oidc"
)

// An OIDC sign-in under way is kept in the browser, not in the store
// (issue 23 item 9): the pending record (nonce, PKCE verifier, next, the
// step-up) sealed with AES-GCM into the binding cookie, and the state a
// MAC of its own time (both package oidc's). A start writes nothing to
// the store, so no number of clients, addresses or networks starting
// sign-ins can fill it. The
// keys are the store's (a link set that every gateway sharing the store
// reads), made by the first gateway that needs one and replaced weekly;
// a copy of the store could forge pending records, which gives nothing a
// sign-in of its own would not (the provider still proves the user).
//
// The state is used once: a successful code exchange records it (a
// link, for as long as the state lives), and a callback with a recorded
// state is refused.
const (
	stateKeysLink   = "oidc-state-keys"
	stateKeyLife    = 7 * 24 * time.Hour // a key seals for stateKeyRotate, then opens until its life ends
	stateKeyRotate  = stateKeyLife - 24*time.Hour
	stateKeysReread = time.Minute     // how long a gateway uses the keys it read
	stateKeysRetry  = 5 * time.Second // a state no key opens reads them again, at most this often
	stateUsedPrefix = "oidc-used:"
	// maxPendingNext bounds the next kept in the cookie (JSON may double
	// it): a longer one lands on /.
	maxPendingNext = 1024
)

// stateKeyring is what a handler read of the store's keys, newest first.
type stateKeyring struct {
	mu   sync.Mutex
	keys []oidc.StateKey
	read time.Time
}

// stateKeys returns the keys, newest first, reading them from the store
// when the ones read are older than stateKeysReread (or, with again, than
// stateKeysRetry), and making a new one when the newest is due.
func (o *oidcSignIn) stateKeys(ctx context.Context, again bool) ([]oidc.StateKey, error) {
	k := o.stateRing
	k.mu.Lock()
	defer k.mu.Unlock()
	now := o.now()
	age := now.Sub(k.read)
	if len(k.keys) > 0 && age < stateKeysReread && (!again || age < stateKeysRetry) {
		return k.keys, nil
	}
	members, err := o.store.Linked(ctx, stateKeysLink, now)
	if err != nil {
		return nil, err
	}
	var keys []oidc.StateKey
	for _, m := range members {
		at, b64, ok := strings.Cut(m, ":")
		ms, err := strconv.ParseInt(at, 10, 64)
		key, kerr := base64.RawURLEncoding.DecodeString(b64)
		if ok && err == nil && kerr == nil && len(key) == 32 {
			keys = append(keys, oidc.StateKey{Made: time.UnixMilli(ms), Key: key})
		}
	}
	slices.SortFunc(keys, func(a, b oidc.StateKey) int { return b.Made.Compare(a.Made) })
	if len(keys) == 0 || now.Sub(keys[0].Made) >= stateKeyRotate {
		nk := oidc.StateKey{Made: now.Truncate(time.Millisecond), Key: make([]byte, 32)}
		_, _ = rand.Read(nk.Key)
		member := strconv.FormatInt(nk.Made.UnixMilli(), 10) + ":" + base64.RawURLEncoding.EncodeToString(nk.Key)
		if err := o.store.Link(ctx, stateKeysLink, member, stateKeyLife, now); err != nil {
			return nil, err
		}
		keys = append([]oidc.StateKey{nk}, keys...)
	}
	k.keys, k.read = keys, now
	return keys, nil
}

// oidcCookieName is the binding cookie's name beside the session
// cookie name. On HTTPS it has the
// __Host- prefix whatever the session cookie's name: a browser takes a
// __Host- cookie only from this very host (Secure, Path=/, no Domain),
// so a sibling subdomain cannot toss its own sign-in's cookie into a
// visitor's browser (login CSRF), nor replace the visitor's.
func oidcCookieName(name string, secure bool) string {
	if !secure {
		return name + oidcCookieSuffix
	}
	name = strings.TrimPrefix(strings.TrimPrefix(name, "__Host-"), "__Secure-")
	return "__Host-" + name + oidcCookieSuffix
}

// cookieName is the binding cookie's name for r.
func (o *oidcSignIn) cookieName(r *http.Request) string {
	return oidcCookieName(o.cookies.cookieName(r), o.cookies.secure(r))
}

// bindingCookie is the binding cookie with value (maxAge < 0 clears it):
// host-only, Path=/ (as __Host- requires), HttpOnly, SameSite=Lax so
// that it comes back with the provider's redirect.
func (o *oidcSignIn) bindingCookie(r *http.Request, value string, maxAge time.Duration) *http.Cookie {
	return &http.Cookie{Name: o.cookieName(r), Value: value, Path: "/", Secure: o.cookies.secure(r),
		HttpOnly: true, SameSite: http.SameSiteLaxMode, MaxAge: int(maxAge / time.Second)}
}
