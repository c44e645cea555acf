package sessionauth

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"golang.org/x/crypto/bcrypt"

	"github.com/sessionauth/caddy-sessionauth/accounts"
	"github.com/sessionauth/caddy-sessionauth/internal/redisserver"
	"github.com/sessionauth/caddy-sessionauth/session"
	"github.com/sessionauth/caddy-sessionauth/session/storetest"
)

// Wrong TOTP codes count per account, from all addresses together, in
// the store: right codes do not count; the tenth wrong code in 15
// minutes is still checked, and then the code step refuses the account
// (even its right code) from any address of a /48 and on another gateway
// sharing the store, with a page that says so (429, Retry-After) and one
// rate_limited event with reason code. Once the window has passed, the
// right code signs in again. On all three stores (Redis keeps its own
// time, so the window's end is checked on memory and file).
func TestWrongCodesLimitedPerAccount(t *testing.T) {
	t.Run("memory", func(t *testing.T) { testWrongCodes(t, &StoreConfig{Type: "memory"}) })
	t.Run("file", func(t *testing.T) {
		testWrongCodes(t, &StoreConfig{Type: "file", Path: filepath.Join(t.TempDir(), "sessions.db")})
	})
	t.Run("redis", func(t *testing.T) {
		srv := redisserver.Start(t)
		testWrongCodes(t, &StoreConfig{Type: "redis", URL: "redis://" + srv.Addr, KeyPrefix: "codes:"})
	})
}

func testWrongCodes(t *testing.T, store *StoreConfig) {
	hash, _ := bcrypt.GenerateFromPassword([]byte("demo"), bcrypt.MinCost)
	gateway := func(now func() time.Time) (*Handler, *storetest.Clock) {
		return testHandler(t, func(h *Handler) {
			c := *store
			h.Store = &c
			h.LoginRate = &Rate{Count: 1000, Window: caddy.Duration(time.Minute)}
			h.SignIn = &SignIn{Accounts: []*Account{{User: "bob", Hash: string(hash), TOTP: stepUpTOTP}}}
			if now != nil {
				h.now = now
			}
		})
	}
	h, clock := gateway(nil)
	other, _ := gateway(clock.Now) // another gateway on the same store

	code := func(off time.Duration) string {
		c, err := accounts.TOTPCode(stepUpTOTP, h.now().Add(off))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	n := 0
	// try signs bob in from a new address of one /48 on gateway g: the
	// password, then the code.
	type result struct {
		code        int
		body, retry string
		session     bool
	}
	try := func(g *Handler, c string) result {
		n++
		fc := &formClient{t: t, h: g, ip: fmt.Sprintf("2001:db8:7:%x::1", n), cookies: map[string]*http.Cookie{}}
		p := fc.get("/.auth/sign-in?next=%2Fapp")
		w := fc.post(url.Values{"csrf": {field(p.Body.String(), "csrf")}, "next": {"/app"}, "username": {"bob"}, "password": {"demo"}})
		if field(w.Body.String(), "pending") == "" {
			t.Fatalf("no code step: %d %s", w.Code, w.Body)
		}
		w = fc.post(url.Values{"csrf": {field(w.Body.String(), "csrf")}, "next": {"/app"}, "pending": {field(w.Body.String(), "pending")}, "code": {c}})
		return result{code: w.Code, body: w.Body.String(), retry: w.Header().Get("Retry-After"), session: fc.cookies["session"] != nil}
	}
	// A code no step near now has.
	wrong := func() string {
		for i := 0; ; i++ {
			c := fmt.Sprintf("%06d", i)
			if c != code(-30*time.Second) && c != code(0) && c != code(30*time.Second) {
				return c
			}
		}
	}

	for i := range 11 { // right codes, each of its own 30 s step: not counted
		if res := try(h, code(0)); res.code != http.StatusSeeOther || !res.session {
			t.Fatalf("right code %d: %d %s", i+1, res.code, res.body)
		}
		clock.Advance(30 * time.Second)
	}
	for i := range 9 {
		if res := try(h, wrong()); res.code != http.StatusUnauthorized || !strings.Contains(res.body, "Wrong code") {
			t.Fatalf("wrong code %d: %d %s", i+1, res.code, res.body)
		}
	}
	if res := try(other, code(0)); res.code != http.StatusSeeOther || !res.session {
		t.Fatalf("the right code after 9 wrong ones: %d %s", res.code, res.body)
	}
	if res := try(other, wrong()); res.code != http.StatusUnauthorized || !strings.Contains(res.body, "Wrong code") {
		t.Fatalf("the tenth wrong code is checked: %d %s", res.code, res.body)
	}
	clock.Advance(30 * time.Second)
	for _, g := range []*Handler{h, other, h} {
		res := try(g, code(0))
		if res.code != http.StatusTooManyRequests || res.session || res.retry == "" ||
			!strings.Contains(res.body, "Too many wrong codes were entered for this account") {
			t.Fatalf("the right code past 10 wrong ones: %d %q %s", res.code, res.retry, res.body)
		}
	}
	evs, err := h.store.Events(context.Background(), "bob", time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	limited := 0
	for _, e := range evs {
		if e.Type == session.EventRateLimited {
			limited++
			if e.Reason != limitCode {
				t.Fatalf("rate_limited reason %q", e.Reason)
			}
		}
	}
	if limited != 1 {
		t.Fatalf("rate_limited events: %d, want 1", limited)
	}
	if store.Type == "redis" {
		return
	}
	clock.Advance(codeLimit.window)
	if res := try(other, code(0)); res.code != http.StatusSeeOther || !res.session {
		t.Fatalf("the right code once the window passed: %d %s", res.code, res.body)
	}
}
