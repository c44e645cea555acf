package oidc

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Identity is the user a provider's claims describe.
type Identity struct {
	UserID string
	// Email is the verified address, else empty: an unverified address
	// is not forwarded as the user's.
	Email string
	Name  string
	// Roles are the roles claim's, joined by ",".
	Roles string
}

// UserID is the user id as it is stored, compared and forwarded: an
// email address in lower case (SPEC 11 "One user id, one person"), so
// that Alice@Example.com is not a second person beside alice@example.com.
func UserID(id string) string {
	if strings.Contains(id, "@") {
		return strings.ToLower(id)
	}
	return id
}

func (p *Provider) userClaim() string {
	if p.cfg.UserClaim != "" {
		return p.cfg.UserClaim
	}
	return defaultUserClaim
}

func (p *Provider) rolesClaim() string {
	if p.cfg.RolesClaim != "" {
		return p.cfg.RolesClaim
	}
	return defaultRolesClaim
}

// EmailNamesUsers: the user claim is the verified email, which every
// such provider shares; other claims name users of this provider alone.
func (p *Provider) EmailNamesUsers() bool { return p.userClaim() == defaultUserClaim }

// needsUserInfo: the ID token lacks the user claim, or the email that a
// user claim of email needs verified.
func (p *Provider) needsUserInfo(claims map[string]any) bool {
	_, hasUser := claims[p.userClaim()]
	_, hasEmail := claims["email"]
	return !hasUser || !hasEmail
}

// Identity maps the claims to the user: user_claim (email by default,
// which must then be verified), email, name, roles_claim. reason says
// why the claims name no usable user.
func (p *Provider) Identity(claims map[string]any) (who Identity, reason string) {
	userClaim := p.userClaim()
	who.UserID = UserID(claimString(claims[userClaim]))
	who.Email = claimString(claims["email"])
	verified := claimTrue(claims["email_verified"])
	if !verified {
		who.Email = "" // an unverified address is not forwarded as the user's
	}
	who.Name = claimString(claims["name"])
	if who.Name == "" {
		who.Name = claimString(claims["preferred_username"])
	}
	who.Roles = strings.Join(claimStrings(claims[p.rolesClaim()]), ",")
	switch {
	case who.UserID == "":
		return who, fmt.Sprintf("the provider did not name the user (no %s claim)", userClaim)
	case userClaim == "email" && !verified:
		return who, "the email address is not verified at the provider"
	}
	return who, ""
}

// Allowed applies allow_*: with none given, everyone the provider signs
// in; otherwise the user must match one rule.
func (p *Provider) Allowed(who Identity, claims map[string]any) bool {
	c := p.cfg
	if len(c.AllowUsers) == 0 && len(c.AllowDomains) == 0 && len(c.AllowRoles) == 0 {
		return true
	}
	if slices.Contains(c.AllowUsers, who.UserID) {
		return true
	}
	if at := strings.LastIndexByte(who.Email, '@'); at >= 0 && who.Email != "" {
		domain := who.Email[at+1:]
		for _, d := range c.AllowDomains {
			if strings.EqualFold(d, domain) {
				return true
			}
		}
	}
	for _, role := range claimStrings(claims[p.rolesClaim()]) {
		if slices.Contains(c.AllowRoles, role) {
			return true
		}
	}
	return false
}

// Recheck applies a refresh's claims to a signed-in user (SPEC 11
// Recheck): whether the user still passes allow_*, and the roles the
// provider now gives (none when the roles claim is gone). allow_users
// names the session's user userID; an email the claims leave out is the
// one the sign-in verified, email.
func (p *Provider) Recheck(userID, email string, claims map[string]any) (allowed bool, roles string) {
	who, _ := p.Identity(claims)
	who.UserID = userID
	if _, ok := claims["email"]; !ok {
		who.Email = email
	}
	return p.Allowed(who, claims), who.Roles
}

// AuthTime is the claims' auth_time, when the user really signed in at
// the provider.
func AuthTime(claims map[string]any) (time.Time, bool) {
	at, ok := claims["auth_time"].(float64)
	if !ok {
		return time.Time{}, false
	}
	return time.Unix(int64(at), 0), true
}

// SignedInAgain: the claims show a sign-in at the provider since a
// step-up that started at since (with AuthTimeSkew for the clocks), as
// a step-up's max_age=0 requires (OIDC Core then requires auth_time).
func SignedInAgain(claims map[string]any, since time.Time) bool {
	at, ok := AuthTime(claims)
	return ok && !at.Before(since.Add(-AuthTimeSkew))
}

// ClaimString is a string claim's value, else "".
func ClaimString(v any) string { return claimString(v) }

func claimString(v any) string {
	s, _ := v.(string)
	return s
}

func claimTrue(v any) bool {
	switch b := v.(type) {
	case bool:
		return b
	case string:
		return b == "true" // some providers send it as a string
	}
	return false
}

func claimStrings(v any) []string {
	switch l := v.(type) {
	case string:
		var out []string
		for _, s := range strings.Split(l, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
		return out
	case []any:
		var out []string
		for _, e := range l {
			if s, ok := e.(string); ok && s != "" && !strings.Contains(s, ",") {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}
