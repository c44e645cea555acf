package sessionauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"go.uber.org/zap"

	"github.com/sessionauth/caddy-sessionauth/session"
)

// OIDC Back-Channel Logout 1.0: the provider POSTs a signed logout_token
// that names its user (sub) and/or its session (sid); the sessions it
// started for them end.
const (
	backchannelEvent = "http://schemas.openid.net/event/backchannel-logout"
	// A logout token is acted on only this soon after it was issued (and
	// its jti once in that time), so that a copy cannot end sessions
	// signed in later.
	logoutTokenMaxAge = 5 * time.Minute
	logoutTokenSkew   = time.Minute
	maxLogoutBody     = 64 << 10
)

// Link keys: which user ids a provider's subject and session id signed
// in as (session.Links), kept as long as a session can live.
func subjectLink(provider, sub string) string { return "idp:" + provider + ":sub:" + sub }
func sidLink(provider, sid string) string     { return "idp:" + provider + ":sid:" + sid }

// linkProviderSession records the subject and sid of an OIDC sign-in (or
// of an API token made by its session), before the session is minted, so
// that a logout token finds it for as long as the session can live.
func (h *Handler) linkProviderSession(ctx context.Context, provider, userID, sub, sid string, ttl time.Duration) error {
	now := h.now()
	if err := h.store.Link(ctx, subjectLink(provider, sub), userID, ttl, now); err != nil {
		return err
	}
	if sid != "" {
		return h.store.Link(ctx, sidLink(provider, sid), userID, ttl, now)
	}
	return nil
}

// errProviderDown: the provider's discovery did not answer, so a logout
// token cannot be checked now (a 503, not the token's fault).
var errProviderDown = errors.New("provider unavailable")

// logoutToken is what a verified logout token says.
type logoutToken struct {
	sub, sid, jti string
}

// serveBackchannelLogout answers POST {endpoints}/backchannel-logout/<name>:
// 200 once the matching sessions ended, 400 for anything that is not a
// valid logout token of that provider. Failed attempts count towards
// guess_rate, so that forged tokens cannot make the gateway hammer the
// provider's key set.
func (h *Handler) serveBackchannelLogout(w http.ResponseWriter, r *http.Request, name string) error {
	// SPEC 11: 400 to anything but a valid logout token of a provider
	// configured here, another method and an unknown name included.
	p := h.providers[name]
	if p == nil {
		return writeJSON(w, http.StatusBadRequest, errorBody{"unknown_provider"})
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		return writeJSON(w, http.StatusBadRequest, errorBody{"invalid_logout_token"})
	}
	if retry, blocked := h.blocked.check(limitGuess+":"+clientKey(clientIP(r)), h.now()); blocked {
		h.metrics.limited(limitGuess)
		return tooMany(w, r, errRateLimited{retry})
	}
	lt, why, err := h.readLogoutToken(r, p)
	switch {
	case errors.Is(err, errProviderDown):
		// Ours to fix, not the token's: the provider may send it again.
		h.logger.Warn("back-channel logout not checked: the provider's keys are unavailable", zap.String("provider", name), zap.Error(err))
		w.Header().Set("Retry-After", "60")
		return writeJSON(w, http.StatusServiceUnavailable, errorBody{"provider_unavailable"})
	case err != nil:
		return h.storeUnavailable(w, r, err)
	}
	if why != "" {
		if c := h.logger.Check(zap.WarnLevel, "back-channel logout refused"); c != nil {
			c.Write(zap.String("provider", name), zap.String("reason", why), zap.String("ip_address", clientIP(r)))
		}
		if err := h.rateLimit(r, limitGuess, clientKey(clientIP(r)), "", h.GuessRate); err != nil {
			var rl errRateLimited
			if errors.As(err, &rl) {
				return tooMany(w, r, err)
			}
		}
		return writeJSON(w, http.StatusBadRequest, errorBody{"invalid_logout_token"})
	}
	ended, err := h.endProviderSessions(r.Context(), name, lt, session.EndRevoked, nil)
	if err != nil {
		return h.storeUnavailable(w, r, err)
	}
	if c := h.logger.Check(zap.InfoLevel, "back-channel logout"); c != nil {
		c.Write(zap.String("provider", name), zap.Int("sessions_ended", ended))
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// readLogoutToken checks the request and its logout_token (signature,
// iss, aud, iat, exp when given, the back-channel event, sub and/or sid,
// no nonce, a jti not seen before); why says what failed in the request,
// err what failed here (the provider's discovery, the store).
func (h *Handler) readLogoutToken(r *http.Request, p *provider) (lt logoutToken, why string, err error) {
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/x-www-form-urlencoded" {
		return lt, "not a form post", nil
	}
	r.Body = http.MaxBytesReader(nil, r.Body, maxLogoutBody)
	if err := r.ParseForm(); err != nil {
		return lt, "unreadable form", nil
	}
	raw := r.PostForm.Get("logout_token")
	if raw == "" || len(r.PostForm["logout_token"]) != 1 {
		return lt, "no logout_token", nil
	}
	if _, _, err := p.discover(r.Context()); err != nil {
		return lt, "", fmt.Errorf("%w: %v", errProviderDown, err)
	}
	ctx, cancel := context.WithTimeout(oidc.ClientContext(r.Context(), p.client), providerTimeout)
	defer cancel()
	tok, err := verifyToken(ctx, p.logoutVerifier, raw)
	if err != nil {
		return lt, "logout token refused: " + err.Error(), nil
	}
	var claims struct {
		Sid    string                     `json:"sid"`
		Jti    string                     `json:"jti"`
		Nonce  *json.RawMessage           `json:"nonce"`
		Events map[string]json.RawMessage `json:"events"`
	}
	if err := tok.Claims(&claims); err != nil {
		return lt, "logout token claims unreadable", nil
	}
	now := h.now()
	switch ev, ok := claims.Events[backchannelEvent]; {
	case !ok || len(ev) == 0 || ev[0] != '{':
		return lt, "not a back-channel logout event", nil
	case claims.Nonce != nil:
		return lt, "a logout token must not carry a nonce", nil
	case tok.Subject == "" && claims.Sid == "":
		return lt, "neither sub nor sid", nil
	case claims.Jti == "" || len(claims.Jti) > 256:
		return lt, "no jti", nil
	case tok.IssuedAt.IsZero() || tok.IssuedAt.After(now.Add(logoutTokenSkew)) || now.Sub(tok.IssuedAt) > logoutTokenMaxAge:
		return lt, "iat missing or not recent", nil
	case !tok.Expiry.IsZero() && !now.Before(tok.Expiry.Add(logoutTokenSkew)):
		return lt, "expired", nil
	case len(tok.Subject) > 256 || len(claims.Sid) > 256:
		return lt, "sub or sid too long", nil
	}
	// Each token is acted on once: a copy cannot end sessions signed in
	// after the provider sent it.
	sctx := r.Context()
	n, _, err := h.store.Hit(sctx, "bcl-jti:"+p.cfg.Name+":"+claims.Jti, logoutTokenMaxAge+2*logoutTokenSkew, now)
	switch {
	case err != nil:
		return lt, "", err
	case n > 1:
		return lt, "jti already used", nil
	}
	return logoutToken{sub: tok.Subject, sid: claims.Sid, jti: claims.Jti}, "", nil
}

// endProviderSessions ends the active sessions of provider that lt names
// (for reason, actor idp), those only passes when it is set: with a sid,
// that provider session's (and, when the sub is given too, the subject's
// sessions whose ID token named no sid); with a sub alone, every session
// of that subject. API tokens made by a provider's session carry its sub
// and sid, and end with it.
func (h *Handler) endProviderSessions(ctx context.Context, provider string, lt logoutToken, reason string, only func(*session.Session) bool) (int, error) {
	now := h.now()
	var users []string
	for _, key := range []string{subjectLink(provider, lt.sub), sidLink(provider, lt.sid)} {
		if strings.HasSuffix(key, ":") {
			continue // no sub, or no sid
		}
		more, err := h.store.Linked(ctx, key, now)
		if err != nil {
			return 0, err
		}
		users = append(users, more...)
	}
	slices.Sort(users)
	users = slices.Compact(users)
	matches := func(s *session.Session) bool {
		switch {
		case !s.Active() || s.Provider != provider || (only != nil && !only(s)):
			return false
		case lt.sub != "" && s.Subject != lt.sub:
			return false
		case lt.sid != "" && s.ProviderSID != lt.sid:
			return lt.sub != "" && s.ProviderSID == ""
		}
		return true
	}
	ended := 0
	for _, user := range users {
		list, err := h.store.List(ctx, user, now, h.policy)
		if err != nil {
			return ended, err
		}
		for _, s := range list {
			if !matches(s) {
				continue
			}
			e, err := h.store.End(ctx, s.ID, now, reason, session.ActorIDP, h.policy)
			switch {
			case errors.Is(err, session.ErrNotFound):
				continue // it ended meanwhile
			case err != nil:
				return ended, fmt.Errorf("ending session %s: %w", s.ID, err)
			}
			ended++
			h.sessionEnded(e, ending{reason: reason, actor: session.ActorIDP, at: now, quiet: true})
		}
	}
	return ended, nil
}
