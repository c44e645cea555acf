package sessionauth

import (
	"errors"
	"net/http"

	"go.uber.org/zap"

	"github.com/sessionauth/caddy-sessionauth/oidc"
	"github.com/sessionauth/caddy-sessionauth/session"
)

// cookieSecret is the secret half of the request's cookie for session id,
// for a session found otherwise than by authenticate (which keeps it in
// auth.secret): the key to what the session keeps sealed.
func (h *Handler) cookieSecret(r *http.Request, id string) string {
	cookies, _ := h.cookies.readCookies(r)
	for _, raw := range cookies.values() {
		if sid, _, err := session.ParseCredential(raw); err == nil && sid == id {
			return credentialSecret(raw)
		}
	}
	return ""
}

// logoutURL is where /.auth/logout sends a browser whose session came
// from a provider with logout_at_provider (OpenID Connect RP-Initiated
// Logout 1.0): its end_session_endpoint with the ID token as a hint, the
// client id, and next as an absolute post-logout URI, which the
// provider must know for this client. Empty when the provider has no
// such endpoint: the logout then ends here alone, and says so in the log.
func (o *oidcSignIn) logoutURL(r *http.Request, s *session.Session, secret, next string) string {
	p := o.provider(s.Provider)
	if p == nil || !p.cfg.LogoutAtProvider {
		return ""
	}
	var hint string
	if t, err := oidc.OpenTokens(secret, s.ID, s.SealedTokens); err == nil {
		hint = t.ID
	}
	to, err := p.rp.EndSessionURL(r.Context(), hint, requestScheme(r)+"://"+r.Host+next)
	if err != nil {
		if errors.Is(err, oidc.ErrNoEndSession) {
			err = nil
		}
		if c := o.logger.Check(zap.WarnLevel, "logout_at_provider: the provider has no end_session_endpoint (or does not answer); signed out here only"); c != nil {
			c.Write(zap.String("provider", p.cfg.Name), zap.Error(err))
		}
		return ""
	}
	return to
}
