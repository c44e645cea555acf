package sessionauth

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// An OIDC sign-in under way is kept in the browser, not in the store
// (issue 23 item 9): the pending record (nonce, PKCE verifier, next, the
// step-up) sealed with AES-GCM into the binding cookie, and the state a
// MAC of its own time. A start writes nothing to the store, so no number
// of clients, addresses or networks starting sign-ins can fill it. The
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

// stateKey is one key of the ring, and when it was made.
type stateKey struct {
	made time.Time
	key  []byte
}

// stateKeyring is what a handler read of the store's keys, newest first.
type stateKeyring struct {
	mu   sync.Mutex
	keys []stateKey
	read time.Time
}

// stateKeys returns the keys, newest first, reading them from the store
// when the ones read are older than stateKeysReread (or, with again, than
// stateKeysRetry), and making a new one when the newest is due.
func (h *Handler) stateKeys(ctx context.Context, again bool) ([]stateKey, error) {
	k := h.stateRing
	k.mu.Lock()
	defer k.mu.Unlock()
	now := h.now()
	age := now.Sub(k.read)
	if len(k.keys) > 0 && age < stateKeysReread && (!again || age < stateKeysRetry) {
		return k.keys, nil
	}
	members, err := h.store.Linked(ctx, stateKeysLink, now)
	if err != nil {
		return nil, err
	}
	var keys []stateKey
	for _, m := range members {
		at, b64, ok := strings.Cut(m, ":")
		ms, err := strconv.ParseInt(at, 10, 64)
		key, kerr := base64.RawURLEncoding.DecodeString(b64)
		if ok && err == nil && kerr == nil && len(key) == 32 {
			keys = append(keys, stateKey{made: time.UnixMilli(ms), key: key})
		}
	}
	slices.SortFunc(keys, func(a, b stateKey) int { return b.made.Compare(a.made) })
	if len(keys) == 0 || now.Sub(keys[0].made) >= stateKeyRotate {
		nk := stateKey{made: now.Truncate(time.Millisecond), key: make([]byte, 32)}
		_, _ = rand.Read(nk.key)
		member := strconv.FormatInt(nk.made.UnixMilli(), 10) + ":" + base64.RawURLEncoding.EncodeToString(nk.key)
		if err := h.store.Link(ctx, stateKeysLink, member, stateKeyLife, now); err != nil {
			return nil, err
		}
		keys = append([]stateKey{nk}, keys...)
	}
	k.keys, k.read = keys, now
	return keys, nil
}

func subKey(key []byte, use string) []byte {
	out, _ := hkdf.Key(sha256.New, key, nil, "session_auth oidc "+use, 32)
	return out
}

// newState is a state made now under key: 16 random bytes, the time in
// Unix milliseconds, and a MAC of both.
func newState(key []byte, now time.Time) string {
	b := make([]byte, 24, 40)
	_, _ = rand.Read(b[:16])
	binary.BigEndian.PutUint64(b[16:], uint64(now.UnixMilli()))
	mac := hmac.New(sha256.New, subKey(key, "state"))
	mac.Write(b)
	return base64.RawURLEncoding.EncodeToString(mac.Sum(b)[:40])
}

// stateMadeAt checks a state against the keys: when it was made, or
// false for one no key made.
func stateMadeAt(keys []stateKey, state string) (time.Time, bool) {
	b, err := base64.RawURLEncoding.DecodeString(state)
	if err != nil || len(b) != 40 {
		return time.Time{}, false
	}
	for _, k := range keys {
		mac := hmac.New(sha256.New, subKey(k.key, "state"))
		mac.Write(b[:24])
		if hmac.Equal(mac.Sum(nil)[:16], b[24:]) {
			return time.UnixMilli(int64(binary.BigEndian.Uint64(b[16:24]))), true
		}
	}
	return time.Time{}, false
}

// sealPending seals ps (with its state) under key for the binding cookie.
func sealPending(key []byte, ps pendingSignIn) (string, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // a next with < or & stays its length
	if err := enc.Encode(ps); err != nil {
		return "", err
	}
	block, err := aes.NewCipher(subKey(key, "pending"))
	if err != nil {
		return "", err
	}
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(aead.Seal(nil, nil, buf.Bytes(), []byte(ps.State))), nil
}

// openPending opens a binding cookie's value for state under any of the
// keys: the cookie of another sign-in (another state) does not open.
func openPending(keys []stateKey, value, state string) (pendingSignIn, error) {
	var ps pendingSignIn
	raw, err := base64.RawURLEncoding.DecodeString(value)
	if err != nil {
		return ps, err
	}
	for _, k := range keys {
		block, err := aes.NewCipher(subKey(k.key, "pending"))
		if err != nil {
			return ps, err
		}
		aead, err := cipher.NewGCMWithRandomNonce(block)
		if err != nil {
			return ps, err
		}
		if plain, err := aead.Open(nil, nil, raw, []byte(state)); err == nil {
			if err := json.Unmarshal(plain, &ps); err != nil || ps.State != state {
				return pendingSignIn{}, errors.New("binding cookie unreadable")
			}
			return ps, nil
		}
	}
	return ps, errors.New("binding cookie is not this sign-in's")
}

// oidcCookieName is the binding cookie's name. On HTTPS it has the
// __Host- prefix whatever the session cookie's name: a browser takes a
// __Host- cookie only from this very host (Secure, Path=/, no Domain),
// so a sibling subdomain cannot toss its own sign-in's cookie into a
// visitor's browser (login CSRF), nor replace the visitor's.
func (h *Handler) oidcCookieName(r *http.Request) string {
	name := h.cookieName(r)
	if !h.secure(r) {
		return name + oidcCookieSuffix
	}
	name = strings.TrimPrefix(strings.TrimPrefix(name, "__Host-"), "__Secure-")
	return "__Host-" + name + oidcCookieSuffix
}

// bindingCookie is the binding cookie with value (maxAge < 0 clears it):
// host-only, Path=/ (as __Host- requires), HttpOnly, SameSite=Lax so
// that it comes back with the provider's redirect.
func (h *Handler) bindingCookie(r *http.Request, value string, maxAge time.Duration) *http.Cookie {
	return &http.Cookie{Name: h.oidcCookieName(r), Value: value, Path: "/", Secure: h.secure(r),
		HttpOnly: true, SameSite: http.SameSiteLaxMode, MaxAge: int(maxAge / time.Second)}
}
