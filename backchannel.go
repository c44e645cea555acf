package sessionauth

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/sessionauth/caddy-sessionauth/oidc"
	"github.com/sessionauth/caddy-sessionauth/session"
)

// OIDC Back-Channel Logout 1.0: the provider POSTs a signed logout_token
// that names its user (sub) and/or its session (sid); the sessions it
// started for them end.
const maxLogoutBody = 64 << 10

// Link keys: which user ids a provider's subject and session id signed
// in as (session.Links), kept as long as a session can live.
func subjectLink(provider, sub string) string { return "idp:" + provider + ":sub:" + sub }
func sidLink(provider, sid string) string     { return "idp:" + provider + ":sid:" + sid }

// linkSession records the subject and sid of an OIDC sign-in (or
// of an API token made by its session), before the session is minted, so
// that a logout token finds it for as long as the session can live.
func (o *oidcSignIn) linkSession(ctx context.Context, provider, userID, sub, sid string, ttl time.Duration) error {
	now := o.now()
	if err := o.store.Link(ctx, subjectLink(provider, sub), userID, ttl, now); err != nil {
		return err
	}
	if sid != "" {
		return o.store.Link(ctx, sidLink(provider, sid), userID, ttl, now)
	}
	return nil
}

// serveBackchannel answers POST {endpoints}/backchannel-logout/<name>:
// 200 once the matching sessions ended, 400 for anything that is not a
// valid logout token of that provider. Failed attempts count towards
// guess_rate, so that forged tokens cannot make the gateway hammer the
// provider's key set.
func (o *oidcSignIn) serveBackchannel(w http.ResponseWriter, r *http.Request, name string) error {
	// SPEC 11: 400 to anything but a valid logout token of a provider
	// configured here, another method and an unknown name included.
	p := o.provider(name)
	if p == nil {
		return writeJSON(w, http.StatusBadRequest, errorBody{"unknown_provider"})
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		return writeJSON(w, http.StatusBadRequest, errorBody{"invalid_logout_token"})
	}
	if retry, blocked := o.blocked.check(limitGuess+":"+clientKey(clientIP(r)), o.now()); blocked {
		o.metrics.limited(limitGuess)
		return tooMany(w, r, errRateLimited{retry})
	}
	lt, why, err := o.readLogoutToken(r, p)
	switch {
	case errors.Is(err, oidc.ErrUnavailable):
		// Ours to fix, not the token's: the provider may send it again.
		o.logger.Warn("back-channel logout not checked: the provider's keys are unavailable", zap.String("provider", name), zap.Error(err))
		w.Header().Set("Retry-After", "60")
		return writeJSON(w, http.StatusServiceUnavailable, errorBody{"provider_unavailable"})
	case err != nil:
		return o.host.storeUnavailable(w, r, err)
	}
	if why != "" {
		if c := o.logger.Check(zap.WarnLevel, "back-channel logout refused"); c != nil {
			c.Write(zap.String("provider", name), zap.String("reason", why), zap.String("ip_address", clientIP(r)))
		}
		if err := o.host.rateLimit(r, limitGuess, clientKey(clientIP(r)), "", o.guessRate); err != nil {
			var rl errRateLimited
			if errors.As(err, &rl) {
				return tooMany(w, r, err)
			}
		}
		return writeJSON(w, http.StatusBadRequest, errorBody{"invalid_logout_token"})
	}
	ended, err := o.endProviderSessions(r.Context(), name, lt, session.EndRevoked, nil)
	if err != nil {
		return o.host.storeUnavailable(w, r, err)
	}
	if c := o.logger.Check(zap.InfoLevel, "back-channel logout"); c != nil {
		c.Write(zap.String("provider", name), zap.Int("sessions_ended", ended))
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// readLogoutToken checks the request and its logout_token (signature,
// iss, aud, iat, exp when given, the back-channel event, sub and/or sid,
// no nonce, a jti not seen before); why says what failed in the request,
// err what failed here (the provider's discovery, the store).
func (o *oidcSignIn) readLogoutToken(r *http.Request, p *oidcProvider) (lt oidc.LogoutToken, why string, err error) {
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
	now := o.now()
	lt, why, err = p.rp.VerifyLogoutToken(r.Context(), raw, now)
	if why != "" || err != nil {
		return lt, why, err
	}
	// Each token is acted on once: a copy cannot end sessions signed in
	// after the provider sent it.
	sctx := r.Context()
	n, _, err := o.store.Hit(sctx, "bcl-jti:"+p.cfg.Name+":"+lt.Jti, oidc.LogoutTokenMaxAge+2*oidc.LogoutTokenSkew, now)
	switch {
	case err != nil:
		return lt, "", err
	case n > 1:
		return lt, "jti already used", nil
	}
	return lt, "", nil
}

// endProviderSessions ends the active sessions of provider that lt names
// (for reason, actor idp), those only passes when it is set: with a sid,
// that provider session's (and, when the sub is given too, the subject's
// sessions whose ID token named no sid); with a sub alone, every session
// of that subject. API tokens made by a provider's session carry its sub
// and sid, and end with it.
func (o *oidcSignIn) endProviderSessions(ctx context.Context, provider string, lt oidc.LogoutToken, reason string, only func(*session.Session) bool) (int, error) {
	now := o.now()
	var users []string
	for _, key := range []string{subjectLink(provider, lt.Sub), sidLink(provider, lt.Sid)} {
		if strings.HasSuffix(key, ":") {
			continue // no sub, or no sid
		}
		more, err := o.store.Linked(ctx, key, now)
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
		case lt.Sub != "" && s.Subject != lt.Sub:
			return false
		case lt.Sid != "" && s.ProviderSID != lt.Sid:
			return lt.Sub != "" && s.ProviderSID == ""
		}
		return true
	}
	ended := 0
	for _, user := range users {
		list, err := o.store.List(ctx, user, now, o.policy)
		if err != nil {
			return ended, err
		}
		for _, s := range list {
			if !matches(s) {
				continue
			}
			e, err := o.store.End(ctx, s.ID, now, reason, session.ActorIDP, o.policy)
			switch {
			case errors.Is(err, session.ErrNotFound):
				continue // it ended meanwhile
			case err != nil:
				return ended, fmt.Errorf("ending session %s: %w", s.ID, err)
			}
			ended++
			o.host.sessionEnded(e, ending{reason: reason, actor: session.ActorIDP, at: now, quiet: true})
		}
	}
	return ended, nil
}
