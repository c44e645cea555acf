package integration

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sessionauth/caddy-sessionauth/internal/redisserver"
)

// A recheck applies the provider's answer in full (SPEC 11 Recheck):
// roles are replaced by the ones the provider now gives, stored so that
// every later request sees them, and a user who no longer passes
// allow_roles is ended with end_reason idp. (Found by an attack: a user
// removed from the allowed group kept session and role.)
func TestOIDCRecheckAppliesAllowAndRoles(t *testing.T) {
	stores(t, func(t *testing.T, storeLine string, _ *redisserver.Server) {
		port := redisserver.FreePort(t)
		o := startOP(t, fmt.Sprintf("http://127.0.0.1:%d/.auth/callback/corp", port))
		o.store.setExtraClaims(map[string]map[string]any{"id-alice": {"teams": []string{"dev", "ops"}}})
		g, _ := loadOIDCCaddy(t, port, oidcSite(port, storeLine,
			providerBlock("corp", o.issuer, "roles_claim teams\nallow_roles dev ops\nrecheck 1s")))
		b := newBrowser(t, g.base)
		if p, _ := b.oidcSignIn("corp", "alice", "/app"); p.status != http.StatusSeeOther {
			t.Fatalf("sign-in: %d %s", p.status, p.body)
		}
		h := b.upstreamSees("/app")
		if h["X-Auth-Roles"] != "dev,ops" {
			t.Fatalf("roles at sign-in: %v", h)
		}
		sid := h["X-Auth-Session"]

		// Out of ops: the roles follow, now and on later requests.
		o.store.setExtraClaims(map[string]map[string]any{"id-alice": {"teams": []string{"dev"}}})
		time.Sleep(recheckWait)
		for i := range 2 {
			if h := b.upstreamSees("/app"); h["X-Auth-Roles"] != "dev" || h["X-Auth-Session"] != sid {
				t.Fatalf("request %d after the provider dropped ops: %v", i, h)
			}
		}

		// Out of every allowed group: the session ends (idp) at the next recheck.
		o.store.setExtraClaims(map[string]map[string]any{"id-alice": {"teams": []string{"sales"}}})
		time.Sleep(recheckWait)
		p := b.get("/app")
		if p.status != http.StatusSeeOther || !strings.Contains(p.header.Get("Location"), "session_ended=idp") {
			t.Fatalf("after leaving the allowed groups: %d %q", p.status, p.header.Get("Location"))
		}
		for _, s := range adminSessions(t, g, "alice@example.com") {
			if s.ID == sid && (s.Active || s.EndReason == nil || *s.EndReason != "idp") {
				t.Fatalf("session not ended with idp: %+v", s)
			}
		}
	})
}

// API tokens made by a provider's session are rechecked too, whether or
// not the session still lives (SPEC 11 Recheck): while it lives they
// spend its one refresh token chain (the example provider rotates
// refresh tokens, so two chains would refuse each other), and once it
// signed out they carry the chain on; when the provider refuses the
// user, the token ends with end_reason idp. (Found by an attack: a user
// the provider disabled kept working with a token whose session was
// signed out or idle.)
func TestOIDCRecheckReachesTokens(t *testing.T) {
	stores(t, func(t *testing.T, storeLine string, _ *redisserver.Server) {
		port := redisserver.FreePort(t)
		o := startOP(t, fmt.Sprintf("http://127.0.0.1:%d/.auth/callback/corp", port))
		o.store.setExtraClaims(map[string]map[string]any{"id-alice": {"teams": []string{"dev", "ops"}}})
		g, up := loadOIDCCaddy(t, port, oidcSite(port, storeLine+"\napi_tokens max_lifetime 30d",
			providerBlock("corp", o.issuer, "roles_claim teams\nrecheck 1s")))
		b := newBrowser(t, g.base)
		if p, _ := b.oidcSignIn("corp", "alice", "/app"); p.status != http.StatusSeeOther {
			t.Fatalf("sign-in: %d %s", p.status, p.body)
		}
		token := b.makeToken("script")

		// The session lives: the token's recheck and the session's take
		// turns spending the one chain, and both go on.
		for round := range 2 {
			time.Sleep(recheckWait)
			asked := o.store.refreshAsked.Load()
			if c := token(); c != http.StatusOK {
				t.Fatalf("round %d: token: %d", round, c)
			}
			if o.store.refreshAsked.Load() == asked {
				t.Fatalf("round %d: the token's recheck did not ask the provider", round)
			}
			time.Sleep(recheckWait)
			if s := b.get("/app").status; s != http.StatusOK {
				t.Fatalf("round %d: the session after its token's recheck: %d", round, s)
			}
		}

		// The session signs out: the token is rechecked on its own, and
		// its roles follow the provider's.
		if p := b.send("POST", "/.auth/logout", nil, "Sec-Fetch-Site", "same-origin"); p.status != http.StatusSeeOther {
			t.Fatalf("logout: %d %s", p.status, p.body)
		}
		o.store.setExtraClaims(map[string]map[string]any{"id-alice": {"teams": []string{"dev"}}})
		time.Sleep(recheckWait)
		asked := o.store.refreshAsked.Load()
		if c := token(); c != http.StatusOK || o.store.refreshAsked.Load() == asked {
			t.Fatalf("token after its session signed out: %d, provider asked: %v", c, o.store.refreshAsked.Load() != asked)
		}
		if r := up.lastRequest(); r == nil || r.Header.Get("X-Auth-Roles") != "dev" {
			t.Fatalf("token's roles after the recheck: %v", r)
		}

		// The provider disables the user: the token ends (idp).
		o.store.refuseRefresh.Store(true)
		time.Sleep(recheckWait)
		if c := token(); c != http.StatusUnauthorized {
			t.Fatalf("token of a user the provider refused: %d", c)
		}
		var ended bool
		for _, s := range adminGet[[]struct {
			Kind      string  `json:"kind"`
			Active    bool    `json:"active"`
			EndReason *string `json:"end_reason"`
		}](t, g, "/session-auth/users/alice@example.com/sessions") {
			ended = ended || (s.Kind == "token" && !s.Active && s.EndReason != nil && *s.EndReason == "idp")
		}
		if !ended {
			t.Fatal("the token did not end with end_reason idp")
		}
	})
}
