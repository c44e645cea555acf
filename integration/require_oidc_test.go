package integration

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/sessionauth/caddy-sessionauth/internal/redisserver"
)

// setExtraClaims gives the provider's users more claims than the example
// storage knows (it has no groups of its own).
func (s *opStorage) setExtraClaims(claims map[string]map[string]any) {
	s.mu.Lock()
	s.extraClaims = claims
	s.mu.Unlock()
}

func (s *opStorage) appendExtraClaims(info *oidc.UserInfo, userID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range s.extraClaims[userID] {
		info.AppendClaims(k, v)
	}
}

// SetUserinfoFromScopes fills the ID token's user claims, when the
// client asks for them there.
func (s *opStorage) SetUserinfoFromScopes(ctx context.Context, info *oidc.UserInfo, userID, clientID string, scopes []string) error {
	if err := s.Storage.SetUserinfoFromScopes(ctx, info, userID, clientID, scopes); err != nil {
		return err
	}
	s.appendExtraClaims(info, userID)
	return nil
}

// SetUserinfoFromToken answers the UserInfo endpoint.
func (s *opStorage) SetUserinfoFromToken(ctx context.Context, info *oidc.UserInfo, tokenID, subject, origin string) error {
	if err := s.Storage.SetUserinfoFromToken(ctx, info, tokenID, subject, origin); err != nil {
		return err
	}
	s.appendExtraClaims(info, subject)
	return nil
}

// A session_require rule on roles that come from an OIDC claim named by
// roles_claim: alice, whose claim holds ops, passes; eve, whose claim
// does not, is refused before the upstream, on the rule's path only.
func TestSessionRequireRolesFromOIDCClaim(t *testing.T) {
	stores(t, func(t *testing.T, storeLine string, _ *redisserver.Server) {
		port := redisserver.FreePort(t)
		o := startOP(t, fmt.Sprintf("http://127.0.0.1:%d/.auth/callback/corp", port))
		o.store.setExtraClaims(map[string]map[string]any{
			"id-alice": {"teams": []string{"dev", "ops"}},
			"id-eve":   {"teams": []string{"sales"}},
		})
		text := oidcSite(port, storeLine, providerBlock("corp", o.issuer, "roles_claim teams"))
		text = strings.Replace(text, "\treverse_proxy {UPSTREAM}", "\tsession_require /admin/* roles ops\n\treverse_proxy {UPSTREAM}", 1)
		g, up := loadOIDCCaddy(t, port, text)

		alice := newBrowser(t, g.base)
		if p, _ := alice.oidcSignIn("corp", "alice", "/admin/"); p.status != http.StatusSeeOther {
			t.Fatalf("alice's sign-in: %d %s", p.status, p.body)
		}
		h := alice.upstreamSees("/admin/reports")
		if h["X-Auth-User"] != "alice@example.com" || h["X-Auth-Method"] != "oidc:corp" || h["X-Auth-Roles"] != "dev,ops" {
			t.Fatalf("alice at /admin/reports: the upstream saw %v", h)
		}

		eve := newBrowser(t, g.base)
		if p, _ := eve.oidcSignIn("corp", "eve", "/"); p.status != http.StatusSeeOther {
			t.Fatalf("eve's sign-in: %d %s", p.status, p.body)
		}
		if h := eve.upstreamSees("/home"); h["X-Auth-User"] != "eve@other.example" || h["X-Auth-Roles"] != "sales" {
			t.Fatalf("eve outside the rule: the upstream saw %v", h)
		}
		before := up.count("/admin/reports")
		p := eve.get("/admin/reports")
		if p.status != http.StatusForbidden || up.count("/admin/reports") != before {
			t.Fatalf("eve at /admin/reports: %d, upstream reached %d times (was %d); want 403 before the upstream", p.status, up.count("/admin/reports"), before)
		}
		if !strings.Contains(p.body, "eve@other.example") {
			t.Errorf("the 403 page does not say who is signed in:\n%s", p.body)
		}
		api := eve.send("GET", "/admin/reports", nil, "Accept", "application/json")
		if api.status != http.StatusForbidden || !strings.HasPrefix(api.header.Get("Content-Type"), "application/json") {
			t.Errorf("eve's API request at /admin/reports: %d %q %s", api.status, api.header.Get("Content-Type"), api.body)
		}
	})
}
