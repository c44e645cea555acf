package sessionauth

import (
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/sessionauth/caddy-sessionauth/accounts"
	"github.com/sessionauth/caddy-sessionauth/internal/redisserver"
	"github.com/sessionauth/caddy-sessionauth/session/storetest"
)

// An invitation works until its 7 days are up and not a second after, on
// the file, memory and Redis stores (the clock a real Caddy cannot move).
func TestInviteExpiresOnEveryStore(t *testing.T) {
	tokenStores(t, func(h *Handler) { h.SignIn = &SignIn{Stored: true} }, func(t *testing.T, h *Handler, clock *storetest.Clock) {
		late, inTime := createAccount(t, `{"user_id":"lou"}`), createAccount(t, `{"user_id":"mia"}`)
		clock.Advance(7*24*time.Hour - time.Second)
		c := newClient(t, h)
		page := c.get(inTime.Invite).Body.String()
		if w := c.postTo("/.auth/invite", url.Values{"csrf": {field(page, "csrf")}, "token": {field(page, "token")},
			"password": {"mia's password"}, "confirm": {"mia's password"}}); w.Code != http.StatusSeeOther {
			t.Fatalf("an invitation in its last second: %d %s", w.Code, w.Body)
		}
		if u, _ := c.whoAmI(); u != "mia" {
			t.Fatalf("signed in as %q", u)
		}
		clock.Advance(2 * time.Second)
		if w := newClient(t, h).get(late.Invite); w.Code != http.StatusGone {
			t.Fatalf("an invitation past its 7 days: %d", w.Code)
		}
		if a, _ := getAccount(t, "lou"); a.Password {
			t.Fatal("an expired invitation set a password")
		}
	})
}

// Wrong recovery codes count with wrong TOTP codes, per account from
// every address: past 10, even a right recovery code is refused.
func TestWrongRecoveryCodesCountLikeCodes(t *testing.T) {
	for _, store := range []*StoreConfig{{Type: "memory"}, {Type: "file", Path: filepath.Join(t.TempDir(), "sessions.db")}, nil} {
		name := "redis"
		if store != nil {
			name = store.Type
		}
		t.Run(name, func(t *testing.T) {
			if store == nil {
				srv := redisserver.Start(t)
				store = &StoreConfig{Type: "redis", URL: "redis://" + srv.Addr, KeyPrefix: "wrc:"}
			}
			h, clock := accountHandler(t, store, nil)
			c := newFormClient(t, h, "192.0.2.10")
			c.signIn("bob", func() string { code, _ := accounts.TOTPCode(stepUpTOTP, h.now()); return code })
			w := c.form("/.auth/account/recovery-codes", url.Values{"csrf": {c.csrf()}})
			codes := recoveryCodeOnPage.FindAllStringSubmatch(w.Body.String(), -1)
			if len(codes) != accounts.RecoveryCodeCount {
				t.Fatalf("recovery codes: %d %s", w.Code, w.Body)
			}
			for i := range 10 {
				clock.Advance(time.Second)
				if w := newFormClient(t, h, fmt.Sprintf("198.51.100.%d", i+1)).signInCode("bob", "aaaaa-bbbbb"); w.Code != http.StatusUnauthorized {
					t.Fatalf("wrong recovery code %d: %d %s", i+1, w.Code, w.Body)
				}
			}
			fc := newFormClient(t, h, "203.0.113.9")
			if w := fc.signInCode("bob", codes[0][1]); w.Code != http.StatusTooManyRequests || fc.cookies["session"] != nil {
				t.Fatalf("a right recovery code past 10 wrong ones: %d %s", w.Code, w.Body)
			}
		})
	}
}
