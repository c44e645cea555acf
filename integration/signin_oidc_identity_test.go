package integration

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/sessionauth/caddy-sessionauth/internal/redisserver"
)

// One user id, one person (SPEC 11): a provider's sign-in never becomes
// a user id that a local account has, nor one another provider gave
// from a different claim, unless the operator links them (link_users);
// two providers that both use the verified email share it; email ids are
// lower case. Each refusal is a page in words and login_failed
// (not_allowed). (Found by an attack: a provider account whose
// preferred_username was a local account's id became that user.)
func TestOIDCOneUserIDOnePerson(t *testing.T) {
	stores(t, func(t *testing.T, storeLine string, _ *redisserver.Server) {
		port := redisserver.FreePort(t)
		cb := func(n string) string { return fmt.Sprintf("http://127.0.0.1:%d/.auth/callback/%s", port, n) }
		corp, partner, linked := startOP(t, cb("corp")), startOP(t, cb("partner")), startOP(t, cb("linked"))
		mail, mail2 := startOP(t, cb("mail")), startOP(t, cb("mail2"))
		// At partner, the user claim is "login", which for eve is "eve":
		// the id corp gives eve from preferred_username.
		partner.store.setExtraClaims(map[string]map[string]any{"id-eve": {"login": "eve"}})
		hash, err := bcrypt.GenerateFromPassword([]byte("demo"), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		accounts := "accounts {\n\talice " + string(hash) + "\n\tUV@Example.com " + string(hash) + "\n}\n"
		g, _ := loadOIDCCaddy(t, port, oidcSite(port, storeLine,
			providerBlock("corp", corp.issuer, "user_claim preferred_username")+
				providerBlock("partner", partner.issuer, "user_claim login")+
				providerBlock("linked", linked.issuer, "user_claim preferred_username\nlink_users alice")+
				providerBlock("mail", mail.issuer, "")+providerBlock("mail2", mail2.issuer, "")+accounts))
		refused := func(provider, user, words string) {
			t.Helper()
			b := newBrowser(t, g.base)
			p, _ := b.oidcSignIn(provider, user, "/app")
			if p.status != http.StatusForbidden || !strings.Contains(p.body, words) || !strings.Contains(p.header.Get("Content-Type"), "text/html") {
				t.Fatalf("%s as %s: want 403 with %q, got %d:\n%s", provider, user, words, p.status, p.body)
			}
			if b.get("/app").status != http.StatusSeeOther {
				t.Fatalf("%s as %s: signed in after the refusal", provider, user)
			}
		}
		signedIn := func(provider, user, want string) {
			t.Helper()
			b := newBrowser(t, g.base)
			if p, _ := b.oidcSignIn(provider, user, "/app"); p.status != http.StatusSeeOther {
				t.Fatalf("%s as %s: %d %s", provider, user, p.status, p.body)
			}
			if h := b.upstreamSees("/app"); h["X-Auth-User"] != want || h["X-Auth-Method"] != "oidc:"+provider {
				t.Fatalf("%s as %s: upstream saw %v", provider, user, h)
			}
		}

		// alice at corp is preferred_username "alice": the local account's id.
		refused("corp", "alice", "already has a different account named alice")
		if _, body := g.adminDo("GET", "/session-auth/users/alice/events", ""); !strings.Contains(body, `"type":"login_failed"`) ||
			!strings.Contains(body, `"reason":"not_allowed"`) {
			t.Fatalf("no login_failed not_allowed: %s", body)
		}
		if code, body := g.adminDo("GET", "/session-auth/users/alice/sessions", ""); code != 200 || strings.Contains(body, `"active":true`) {
			t.Fatalf("a session for alice: %d %s", code, body)
		}
		// The operator linked alice at this provider: the same person.
		signedIn("linked", "alice", "alice")

		// corp gives "eve" from preferred_username; partner's "eve" from
		// another claim is not the same person.
		signedIn("corp", "eve", "eve")
		refused("partner", "eve", "already has a different account named eve (the provider corp)")

		// Two providers whose user claim is the verified email share it;
		// a mixed-case address is the lower-case id, and a local account
		// with that address is the same id.
		signedIn("mail", "alice", "alice@example.com")
		signedIn("mail2", "alice", "alice@example.com")
		mail.setTamper(func(c map[string]any) { c["email"], c["email_verified"] = "ALICE@Example.com", true })
		signedIn("mail", "alice", "alice@example.com")
		mail.setTamper(func(c map[string]any) { c["email"], c["email_verified"] = "Uv@example.COM", true })
		refused("mail", "uv", "already has a different account named uv@example.com")
	})
}

// The callback and the ID token carry what an answer for this sign-in
// must (issue 23 item 19): RFC 9207's iss when present must be the
// provider's, and is required when its discovery promises it; iat within
// minutes of now; at_hash, when given, the access token's; azp the
// client id when there are several audiences.
func TestOIDCCallbackIssuerAndIDTokenChecks(t *testing.T) {
	port := redisserver.FreePort(t)
	o := startOP(t, fmt.Sprintf("http://127.0.0.1:%d/.auth/callback/corp", port))
	o.issParam.Store(true)
	g, _ := loadOIDCCaddy(t, port, oidcSite(port, "store memory", providerBlock("corp", o.issuer, "")))
	try := func(words string) {
		t.Helper()
		b := newBrowser(t, g.base)
		p, _ := b.oidcSignIn("corp", "alice", "/app")
		if words == "" {
			if p.status != http.StatusSeeOther || b.get("/app").status != http.StatusOK {
				t.Fatalf("sign-in: %d %s", p.status, p.body)
			}
			return
		}
		if p.status != http.StatusBadRequest || !strings.Contains(p.body, words) {
			t.Fatalf("want 400 with %q, got %d:\n%s", words, p.status, p.body)
		}
		if b.get("/app").status != http.StatusSeeOther {
			t.Fatal("signed in after a refusal")
		}
	}
	// Discovery promises iss: an answer without it is refused.
	try("was not understood")
	evil := "https://evil.example/"
	o.callbackIss.Store(&evil)
	try("came from another provider")
	o.callbackIss.Store(&o.issuer)
	try("")

	for name, tamper := range map[string]func(c map[string]any){
		"iat an hour ago":     func(c map[string]any) { c["iat"] = time.Now().Add(-time.Hour).Unix() },
		"iat an hour ahead":   func(c map[string]any) { c["iat"] = time.Now().Add(time.Hour).Unix() },
		"at_hash of another":  func(c map[string]any) { c["at_hash"] = "x8C5CtD4ZW9SVqLR8Y0Tuw" },
		"azp another client":  func(c map[string]any) { c["aud"], c["azp"] = []any{"gateway", "other"}, "other" },
		"several aud, no azp": func(c map[string]any) { c["aud"] = []any{"gateway", "other"}; delete(c, "azp") },
	} {
		t.Run(strings.ReplaceAll(name, " ", "_"), func(t *testing.T) {
			o.setTamper(tamper)
			defer o.setTamper(nil)
			try("failed the checks")
		})
	}
	// Several audiences with azp the client id pass.
	o.setTamper(func(c map[string]any) { c["aud"], c["azp"] = []any{"gateway", "other"}, "gateway" })
	try("")
}
