package sessionauth

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sessionauth/caddy-sessionauth/internal/redisserver"
	"github.com/sessionauth/caddy-sessionauth/oidc"
	"github.com/sessionauth/caddy-sessionauth/session"
)

// writeCounter counts the writes that reach a store.
type writeCounter struct {
	session.Store
	writes atomic.Int64
}

func (c *writeCounter) Stash(ctx context.Context, key string, v []byte, ttl time.Duration, now time.Time) error {
	c.writes.Add(1)
	return c.Store.Stash(ctx, key, v, ttl, now)
}
func (c *writeCounter) Hit(ctx context.Context, key string, w time.Duration, now time.Time) (int64, time.Duration, error) {
	c.writes.Add(1)
	return c.Store.Hit(ctx, key, w, now)
}
func (c *writeCounter) Link(ctx context.Context, key, member string, ttl time.Duration, now time.Time) error {
	c.writes.Add(1)
	return c.Store.Link(ctx, key, member, ttl, now)
}
func (c *writeCounter) Record(ctx context.Context, e session.Event, p session.Policy) error {
	c.writes.Add(1)
	return c.Store.Record(ctx, e, p)
}

// oidcStartHandler is a handler with one provider (discovery only) on
// the store that storeFor makes.
func oidcStartHandler(t *testing.T, store *StoreConfig) (*Handler, *writeCounter) {
	f := newFakeTokenEndpoint(t)
	h, _ := testHandler(t, func(h *Handler) {
		h.Store = store
		h.SignIn = &SignIn{OIDC: []*OIDCProvider{{Name: "corp", Issuer: f.srv.URL, ClientID: "gw", ClientSecret: "s"}}}
	})
	wc := &writeCounter{Store: h.store}
	h.store = wc
	h.oidc.store = wc // the OIDC part was given the store at provision
	return h, wc
}

// start begins a sign-in from ip (TLS when https) and answers the
// redirect's state and the binding cookie.
func start(t *testing.T, h *Handler, ip, next string, https bool) (string, *http.Cookie) {
	t.Helper()
	target := "/.auth/sign-in/corp?next=" + url.QueryEscape(next)
	if https {
		target = "https://example.com" + target
	}
	r := httptest.NewRequest("GET", target, nil)
	r.Header.Set("Test-Client-IP", ip)
	w := serve(t, h, r, &upstream{})
	loc, _ := url.Parse(w.Header().Get("Location"))
	if w.Code != http.StatusSeeOther || loc == nil || loc.Query().Get("state") == "" {
		t.Fatalf("start from %s: %d %s", ip, w.Code, w.Body)
	}
	cookies := w.Result().Cookies()
	if len(cookies) != 1 {
		t.Fatalf("start: cookies %v", cookies)
	}
	return loc.Query().Get("state"), cookies[0]
}

// Unauthenticated store growth (issue 23 item 9): a provider start keeps
// its pending sign-in in the browser's cookie and writes nothing to the
// store, so sign-ins started from thousands of /64s (of one /48, and of
// many) leave every store as it was, past the one key all starts share;
// a next too long for the cookie lands on /.
func TestOIDCStartsLeaveTheStoreAsItWas(t *testing.T) {
	srv := redisserver.Start(t)
	stores := map[string]*StoreConfig{
		"memory": {Type: "memory"},
		"file":   {Type: "file", Path: filepath.Join(t.TempDir(), "sessions.db")},
		"redis":  {Type: "redis", URL: "redis://" + srv.Addr},
	}
	for name, sc := range stores {
		t.Run(name, func(t *testing.T) {
			h, wc := oidcStartHandler(t, sc)
			start(t, h, "2001:db8::1", "/", false) // the first start makes the key
			if n := wc.writes.Load(); n != 1 {
				t.Fatalf("the first start wrote %d times", n)
			}
			var keys int64
			if name == "redis" {
				keys = redis.NewClient(&redis.Options{Addr: srv.Addr}).DBSize(context.Background()).Val()
			}
			long := "/" + strings.Repeat("a", 4000)
			for i := range 3000 {
				ip := fmt.Sprintf("2001:db8:%x:%x::1", i/256, i%256) // a /64 each, in 12 /48s
				_, c := start(t, h, ip, long, false)
				if len(c.Value) > 3500 {
					t.Fatalf("binding cookie of %d bytes", len(c.Value))
				}
			}
			if n := wc.writes.Load(); n != 1 {
				t.Fatalf("3000 starts wrote %d times", n)
			}
			if name == "redis" {
				if after := redis.NewClient(&redis.Options{Addr: srv.Addr}).DBSize(context.Background()).Val(); after != keys {
					t.Fatalf("Redis keys: %d before, %d after", keys, after)
				}
			}
			// The long next landed on / rather than in the cookie.
			state, c := start(t, h, "192.0.2.1", long, false)
			keysNow, _ := h.oidc.stateKeys(context.Background(), false)
			ps, err := oidc.OpenPending(keysNow, c.Value, state)
			if err != nil || ps.Next != "/" {
				t.Fatalf("pending next: %q %v", ps.Next, err)
			}
		})
	}
}

// The binding cookie cannot be tossed (issue 23 item 11): on HTTPS it is
// __Host- (Secure, Path=/, no Domain), which a sibling subdomain cannot
// set, so a callback whose binding arrives under any name a sibling can
// set (the bare name, __Secure-, a copy of the right one beside it) is
// refused as another browser's, as is one sealed for another state. The
// session cookie may be shared with the subdomains (__Secure-, Domain):
// the binding cookie never is.
func TestOIDCBindingCookieCannotBeTossed(t *testing.T) {
	h, _ := oidcStartHandler(t, &StoreConfig{Type: "memory"})
	// The session cookie is shared with the subdomains (__Secure-session,
	// Domain=example.com): the binding cookie must not follow it there.
	h.Cookie.Domain = "example.com"
	state, c := start(t, h, "192.0.2.1", "/", true)
	if c.Name != "__Host-session_oidc" || !c.Secure || c.Path != "/" || c.Domain != "" || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode {
		t.Fatalf("binding cookie: %+v", c)
	}
	otherState, other := start(t, h, "192.0.2.1", "/", true)
	callback := func(state string, cookies ...string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", "https://example.com/.auth/callback/corp?code=x&state="+url.QueryEscape(state), nil)
		r.Header.Set("Accept", "text/html")
		for _, kv := range cookies {
			r.Header.Add("Cookie", kv)
		}
		return serve(t, h, r, &upstream{})
	}
	for name, cookies := range map[string][]string{
		"bare name":           {"session_oidc=" + c.Value},
		"__Secure-":           {"__Secure-session_oidc=" + c.Value},
		"two of them":         {"__Host-session_oidc=" + other.Value, "__Host-session_oidc=" + c.Value},
		"another sign-in's":   {"__Host-session_oidc=" + other.Value},
		"none":                nil,
		"another state's MAC": {"__Host-session_oidc=" + c.Value[:len(c.Value)-4] + "AAAA"},
	} {
		w := callback(state, cookies...)
		if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "started in another browser") {
			t.Fatalf("%s: %d %s", name, w.Code, w.Body)
		}
	}
	// The right cookie passes the binding (and goes on to the provider,
	// which this fake does not answer for a code).
	if w := callback(otherState, "__Host-session_oidc="+other.Value); strings.Contains(w.Body.String(), "another browser") ||
		strings.Contains(w.Body.String(), "expired") {
		t.Fatalf("the browser's own sign-in: %d %s", w.Code, w.Body)
	}
	// A made-up state is no sign-in at all.
	if w := callback("x"+state[1:], "__Host-session_oidc="+c.Value); !strings.Contains(w.Body.String(), "has expired or was already used") {
		t.Fatalf("made-up state: %d %s", w.Code, w.Body)
	}
}
