package sessionauth

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sessionauth/caddy-sessionauth/oidc"
	"github.com/sessionauth/caddy-sessionauth/session"
)

// fakeTokenEndpoint is a provider's discovery and token endpoint that
// rotates refresh tokens: only the last one it issued is good.
type fakeTokenEndpoint struct {
	srv *httptest.Server

	mu        sync.Mutex
	mode      string // "", "down" (503) or "refuse" (invalid_grant)
	asked     int
	refresh   string // the refresh token it will accept
	issued    int
	expiresIn int
}

func newFakeTokenEndpoint(t *testing.T) *fakeTokenEndpoint {
	f := &fakeTokenEndpoint{refresh: "rt-0", expiresIn: 3600}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer": f.srv.URL, "authorization_endpoint": f.srv.URL + "/auth", "token_endpoint": f.srv.URL + "/token",
			"jwks_uri": f.srv.URL + "/keys", "id_token_signing_alg_values_supported": []string{"RS256"},
		})
	})
	mux.HandleFunc("/token", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.asked++
		w.Header().Set("Content-Type", "application/json")
		switch {
		case f.mode == "down":
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		case f.mode == "refuse" || r.PostFormValue("grant_type") != "refresh_token" || r.PostFormValue("refresh_token") != f.refresh:
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"invalid_grant"}`))
			return
		}
		f.issued++
		f.refresh = fmt.Sprintf("rt-%d", f.issued)
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": fmt.Sprintf("at-%d", f.issued),
			"refresh_token": f.refresh, "token_type": "Bearer", "expires_in": f.expiresIn})
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeTokenEndpoint) set(mode string) { f.mu.Lock(); f.mode = mode; f.mu.Unlock() }
func (f *fakeTokenEndpoint) count() int      { f.mu.Lock(); defer f.mu.Unlock(); return f.asked }

// oidcSession stores a session signed in at corp with the given tokens
// sealed under its cookie, as the callback does, and returns the cookie.
func oidcSession(t *testing.T, h *Handler, tk oidc.Tokens) (*http.Cookie, string) {
	t.Helper()
	id, cookie, hash, err := session.LegacyCredential("alice")
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := oidc.SealTokens(credentialSecret(cookie), id, tk)
	if err != nil {
		t.Fatal(err)
	}
	now := h.now()
	s := &session.Session{ID: id, UserID: "alice", TokenHash: hash, IP: "192.0.2.10", LoginIP: "192.0.2.10",
		CreatedAt: now, LastActiveAt: now, AuthMethod: session.MethodOIDC("corp"),
		Provider: "corp", Subject: "sub-alice", SealedTokens: sealed, CheckedAt: now}
	if _, err := h.store.Create(context.Background(), s, h.policy, h.limit); err != nil {
		t.Fatal(err)
	}
	return &http.Cookie{Name: "session", Value: cookie}, id
}

func oidcHandler(t *testing.T, f *fakeTokenEndpoint, recheck time.Duration, pass bool) (*Handler, func(time.Duration), *observer.ObservedLogs) {
	h, clock := testHandler(t, func(h *Handler) {
		h.Store = &StoreConfig{Type: "memory"}
		h.SignIn = &SignIn{OIDC: []*OIDCProvider{{Name: "corp", Issuer: f.srv.URL, ClientID: "gw", ClientSecret: "s",
			Recheck: caddy.Duration(recheck), PassAccessToken: pass}}}
	})
	core, logs := observer.New(zap.DebugLevel)
	h.logger = zap.New(core)
	return h, clock.Advance, logs
}

// recheck with the handler's clock: not before it is due; then a
// rotated refresh token each time; a provider that fails keeps the
// session, is left alone for a pause and asked again after it; a
// refusal ends the session (idp) and the request never goes through.
func TestRecheckOnTheHandlersClock(t *testing.T) {
	f := newFakeTokenEndpoint(t)
	h, advance, logs := oidcHandler(t, f, time.Minute, false)
	c, id := oidcSession(t, h, oidc.Tokens{Refresh: "rt-0", Access: "at-0", Expiry: h.now().Add(time.Hour)})
	up := &upstream{}
	through := func(want int) {
		t.Helper()
		before := up.calls
		r := get("/app", c)
		r.Header.Set("Accept", "application/json")
		w := serve(t, h, r, up)
		if w.Code != want || (want == http.StatusOK) != (up.calls == before+1) {
			t.Fatalf("status %d (want %d), upstream calls %d→%d", w.Code, want, before, up.calls)
		}
		if up.header.Get("X-Auth-Access-Token") != "" {
			t.Fatal("an access token forwarded without pass_access_token")
		}
	}
	through(http.StatusOK)
	advance(59 * time.Second)
	through(http.StatusOK)
	if f.count() != 0 {
		t.Fatalf("asked before recheck was due: %d", f.count())
	}
	for i := 1; i <= 3; i++ { // each spends the token the last one stored
		advance(time.Minute + time.Second)
		through(http.StatusOK)
		through(http.StatusOK)
		if f.count() != i {
			t.Fatalf("recheck %d: asked %d times", i, f.count())
		}
	}

	f.set("down")
	advance(time.Minute + time.Second)
	through(http.StatusOK)
	through(http.StatusOK) // within the pause: not asked again
	if f.count() != 4 {
		t.Fatalf("with the provider down: asked %d times", f.count())
	}
	advance(providerRetry)
	through(http.StatusOK) // the check was given back: asked again at once
	if f.count() != 5 {
		t.Fatalf("after the pause: asked %d times", f.count())
	}
	if s, _ := h.store.Get(context.Background(), id); !s.Active() {
		t.Fatal("the session ended while the provider was down")
	}

	f.set("refuse")
	advance(providerRetry)
	through(http.StatusUnauthorized)
	s, err := h.store.Get(context.Background(), id)
	if err != nil || s.Active() || s.EndReason != session.EndIDP {
		t.Fatalf("after the refusal: %v %+v", err, s)
	}
	evs, _ := h.store.Events(context.Background(), "alice", time.Time{}, 0)
	if len(evs) == 0 || evs[0].Type != session.EventRevoke || evs[0].Reason != session.EndIDP || evs[0].Actor != session.ActorIDP {
		t.Fatalf("events: %+v", evs)
	}
	through(http.StatusUnauthorized)
	for _, e := range logs.All() {
		line := e.Message
		for _, fd := range e.Context {
			line += " " + fd.String + fmt.Sprint(fd.Interface)
		}
		if strings.Contains(line, "rt-") || strings.Contains(line, "at-") || strings.Contains(line, c.Value[33:]) {
			t.Fatalf("a log line holds a token: %s", line)
		}
	}
}

// pass_access_token: forwarded while fresh, refreshed within 30 s of
// its expiry, and left out (never forwarded expired) when it has
// expired and the provider does not answer.
func TestPassAccessTokenOnTheHandlersClock(t *testing.T) {
	f := newFakeTokenEndpoint(t)
	f.expiresIn = 120
	h, advance, _ := oidcHandler(t, f, 0, true)
	c, _ := oidcSession(t, h, oidc.Tokens{Refresh: "rt-0", Access: "at-0", Expiry: h.now().Add(2 * time.Minute)})
	up := &upstream{}
	sees := func() string {
		t.Helper()
		r := get("/app", c)
		r.Header.Set("X-Auth-Access-Token", "forged")
		if w := serve(t, h, r, up); w.Code != http.StatusOK {
			t.Fatalf("status %d", w.Code)
		}
		return up.header.Get("X-Auth-Access-Token")
	}
	if got := sees(); got != "at-0" || f.count() != 0 {
		t.Fatalf("fresh: %q, asked %d", got, f.count())
	}
	advance(89 * time.Second)
	if got := sees(); got != "at-0" || f.count() != 0 {
		t.Fatalf("31 s before expiry: %q, asked %d", got, f.count())
	}
	advance(time.Second)
	if got := sees(); got != "at-1" || f.count() != 1 {
		t.Fatalf("30 s before expiry: %q, asked %d", got, f.count())
	}
	f.set("down")
	advance(100 * time.Second) // at-1 has 20 s left
	if got := sees(); got != "at-1" || f.count() != 2 {
		t.Fatalf("provider down, token still valid: %q, asked %d", got, f.count())
	}
	advance(30 * time.Second) // expired
	if got := sees(); got != "" {
		t.Fatalf("an expired token forwarded: %q", got)
	}
	f.set("")
	advance(providerRetry)
	if got := sees(); got != "at-2" {
		t.Fatalf("provider back: %q", got)
	}
}
