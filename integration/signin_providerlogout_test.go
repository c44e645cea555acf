package integration

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/sessionauth/caddy-sessionauth/internal/redisserver"
)

// loopbackLogoutClient lets the test provider's client come back to any
// gateway on 127.0.0.1 after a logout, as a real client registers its
// post_logout_redirect_uri.
type loopbackLogoutClient struct{ op.Client }

func (loopbackLogoutClient) RedirectURIGlobs() []string { return nil }
func (loopbackLogoutClient) PostLogoutRedirectURIGlobs() []string {
	return []string{"http://127.0.0.1:*/*"}
}

func (s *opStorage) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	c, err := s.Storage.GetClientByClientID(ctx, id)
	if err != nil {
		return nil, err
	}
	return loopbackLogoutClient{c}, nil
}

// With logout_at_provider, /.auth/logout ends the session here, then
// sends the browser to the provider's end_session_endpoint with the ID
// token as a hint, and the provider sends it back to next.
func TestOIDCLogoutAtProvider(t *testing.T) {
	port := redisserver.FreePort(t)
	o := startOP(t, fmt.Sprintf("http://127.0.0.1:%d/.auth/callback/corp", port), fmt.Sprintf("http://127.0.0.1:%d/.auth/callback/plain", port))
	g, _ := loadOIDCCaddy(t, port, oidcSite(port, "store memory",
		providerBlock("corp", o.issuer, "logout_at_provider")+providerBlock("plain", o.issuer, "")))
	b := newBrowser(t, g.base)
	if p, _ := b.oidcSignIn("corp", "alice", "/app"); p.status != http.StatusSeeOther {
		t.Fatalf("sign-in: %d %s", p.status, p.body)
	}
	p := b.get("/.auth/logout?next=%2Fbye", "Sec-Fetch-Site", "same-origin")
	to, err := url.Parse(p.header.Get("Location"))
	if p.status != http.StatusSeeOther || err != nil || !strings.HasPrefix(to.String(), strings.TrimSuffix(o.issuer, "/")) {
		t.Fatalf("logout: %d %q", p.status, p.header.Get("Location"))
	}
	q := to.Query()
	if q.Get("client_id") != "gateway" || q.Get("post_logout_redirect_uri") != g.base+"/bye" || strings.Count(q.Get("id_token_hint"), ".") != 2 {
		t.Fatalf("to the provider: %s", to)
	}
	if s := b.get("/app").status; s != http.StatusSeeOther {
		t.Fatalf("the session outlived the logout: %d", s)
	}
	// The provider accepts the hint and sends the browser back.
	back := b.get(to.String())
	if back.status != http.StatusFound || back.header.Get("Location") != g.base+"/bye" {
		t.Fatalf("the provider's end_session: %d %q %s", back.status, back.header.Get("Location"), back.body)
	}

	// A provider without logout_at_provider, and an API client: the logout
	// stays here.
	b = newBrowser(t, g.base)
	if p, _ := b.oidcSignIn("plain", "alice", "/app"); p.status != http.StatusSeeOther {
		t.Fatalf("sign-in: %d %s", p.status, p.body)
	}
	if p := b.get("/.auth/logout?next=%2Fbye", "Sec-Fetch-Site", "same-origin"); p.status != http.StatusSeeOther || p.header.Get("Location") != "/bye" {
		t.Fatalf("logout without logout_at_provider: %d %q", p.status, p.header.Get("Location"))
	}
	b = newBrowser(t, g.base)
	if p, _ := b.oidcSignIn("corp", "alice", "/app"); p.status != http.StatusSeeOther {
		t.Fatalf("sign-in: %d %s", p.status, p.body)
	}
	if p := b.get("/.auth/logout", "Accept", "application/json", "Sec-Fetch-Site", "same-origin"); p.status != http.StatusNoContent {
		t.Fatalf("an API client's logout: %d %q", p.status, p.header.Get("Location"))
	}
}
