package sessionauth

import (
	"context"
	"errors"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/sessionauth/caddy-sessionauth/session"
)

// signedIn is who a sign-in proved and how: the hand-off, an account or
// an OIDC provider. Every way in ends in mint with one of these.
type signedIn struct {
	userID, email, name, roles string
	method                     string
	// OIDC: the provider's name and the user's sub there, which a
	// step-up must match besides the user id, and the provider's session
	// id (sid), which a step-up records.
	provider, subject, sid string
	// prepare, when set, completes the session before it is stored; it
	// gets the cookie's secret (OIDC seals the refresh token under it).
	prepare func(s *session.Session, secret string) error
}

// mint is the one place sessions are born for a sign-in: login_rate per
// user, the end of the session the client came with (no fixation), the
// new session with its device and place, the limit, the audit trail and
// notices, and the cookies on w.
func (h *Handler) mint(w http.ResponseWriter, r *http.Request, who signedIn) (*session.Session, error) {
	// login_rate also caps session creations per user, whatever the IP.
	if err := h.rateLimit(r, limitLogin, "user:"+who.userID, who.userID, h.LoginRate); err != nil {
		return nil, err
	}
	ctx := r.Context()

	// No session fixation: a session the client already holds ends here.
	// Only one it proves it holds: an id alone could end someone else's.
	cookies, _ := h.cookies.readCookies(r)
	for _, raw := range cookies.values() {
		if id, hash, err := session.ParseCredential(raw); err == nil {
			if v, err := h.store.Validate(ctx, id, hash, clientIP(r), h.now(), h.policy); err == nil && v.Status == session.Valid {
				now := h.now()
				if e, err := h.store.End(ctx, id, now, session.EndRevoked, session.ActorSelf, h.policy); err == nil {
					h.sessionEnded(e, ending{reason: session.EndRevoked, actor: session.ActorSelf, at: now, quiet: true})
				}
			}
		}
	}

	id, cookie, hash, err := h.store.NewCredential(ctx, who.userID)
	if err != nil {
		return nil, err
	}
	deviceID, deviceCookie := h.cookies.deviceID(r)
	s := h.newSession(r.Context(), id, who.userID, hash, who.method, clientIP(r), r.UserAgent(), deviceID)
	s.Email, s.Name, s.Roles = sanitise(who.email, maxValue), sanitise(who.name, maxValue), sanitise(who.roles, maxRoles)
	s.Site = h.sessionSite(r)
	if who.prepare != nil {
		if err := who.prepare(s, credentialSecret(cookie)); err != nil {
			return nil, err
		}
	}
	ip := s.IP
	ended, err := h.store.Create(ctx, s, h.policy, h.limit)
	if err != nil {
		h.abandon(s, err)
		return nil, err
	}
	h.recordLogin(r, s, ended)
	h.grace.seen(s, hash, s.CreatedAt)
	http.SetCookie(w, h.cookies.sessionCookie(r, cookie, h.policy.Lifetime))
	if deviceCookie != nil {
		http.SetCookie(w, deviceCookie)
	}
	w.Header().Set("Cache-Control", "no-store")
	setPlaceholders(r, s, ip, "false", s.Risk, s.CreatedAt.UTC().Format(time.RFC3339))
	return s, nil
}

// stepUpOf is the step-up a sign-in completes, if any (SPEC 11).
type stepUpOf struct {
	on bool
	// The session to confirm. OIDC carries it from the start, where the
	// browser proved it held it, in the pending record bound to that
	// browser; empty: the session the request's cookie names (the
	// accounts form, posted same-origin).
	id string
}

// finishSignIn is where every sign-in of sign_in ends, accounts and OIDC
// alike, and the one place a step-up is decided: a step-up that proved
// the same user keeps the session (same id and cookie, a new
// authenticated_at, a step_up event); anyone else, and every plain
// sign-in, gets a new session from mint, which ends the one the client
// held. Then land sends the browser on.
func (h *Handler) finishSignIn(w http.ResponseWriter, r *http.Request, who signedIn, su stepUpOf, land func() error) error {
	kept := false
	if su.on {
		var err error
		if kept, err = h.stepUp(r, who, su.id); err != nil {
			return h.mintFailed(w, r, err)
		}
	}
	if !kept {
		if _, err := h.mint(w, r, who); err != nil {
			return h.mintFailed(w, r, err)
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	return land()
}

// stepUp confirms the session su names when who is its user: false when
// there is no such active session or it is someone else's (then the
// caller mints). login_rate per user counts a step-up as a sign-in.
func (h *Handler) stepUp(r *http.Request, who signedIn, id string) (bool, error) {
	s, err := h.stepUpSession(r, id)
	if err != nil || s == nil || !sameUser(s, who) {
		return false, err
	}
	if err := h.rateLimit(r, limitLogin, "user:"+who.userID, who.userID, h.LoginRate); err != nil {
		return false, err
	}
	ctx := r.Context()
	now := h.now()
	s, err = h.store.StepUp(ctx, s.ID, session.Proof{At: now, Method: who.method, ProviderSID: who.sid}, h.policy)
	if errors.Is(err, session.ErrNotFound) {
		return false, nil // ended meanwhile: a new session
	}
	if err != nil {
		return false, err
	}
	h.resealAtStepUp(ctx, r, s, who)
	h.refreshed(s.ID)
	h.logEvent(session.StepUpEvent(s, now, who.method))
	return true, nil
}

// resealAtStepUp gives a session stepped up at a provider that
// provider's new tokens (the ID token logout_at_provider sends as its
// hint, the refresh token recheck spends), as the step-up gave it the new
// sid. Sealing needs the cookie's secret: a callback without the cookie
// (same_site strict) keeps the sign-in's tokens, which still open. A
// recheck under way at the same moment wins (its claim on CheckedAt).
func (h *Handler) resealAtStepUp(ctx context.Context, r *http.Request, s *session.Session, who signedIn) {
	secret := h.cookieSecret(r, s.ID)
	if who.prepare == nil || secret == "" {
		return
	}
	next := s.Clone()
	if err := who.prepare(next, secret); err != nil || next.SealedTokens == "" || next.SealedTokens == s.SealedTokens {
		return
	}
	at := h.now().Truncate(time.Millisecond)
	if !at.After(s.CheckedAt) {
		at = s.CheckedAt.Add(time.Millisecond)
	}
	if won, err := h.store.MarkChecked(ctx, s.ID, s.CheckedAt, at, next.SealedTokens); err != nil || !won {
		h.logger.Warn("step-up: the provider's new tokens not stored; the session keeps its sign-in's",
			zap.String("session_id", s.ID), zap.Bool("claim_lost", err == nil), zap.Error(err))
	}
}

// stepUpSession is the session a step-up would confirm: the one named by
// id, or, with no id, the valid browser session of the request's cookie;
// nil when there is none.
func (h *Handler) stepUpSession(r *http.Request, id string) (*session.Session, error) {
	if id == "" {
		return h.heldSession(r)
	}
	ctx := r.Context()
	s, err := h.store.Get(ctx, id)
	if errors.Is(err, session.ErrNotFound) || (err == nil && (!s.Active() || h.policy.Expired(s, h.now()))) {
		return nil, nil
	}
	return s, err
}

// heldSession is the valid browser session the request's cookie names,
// or nil (none, an API token's, or one the store cannot confirm now).
func (h *Handler) heldSession(r *http.Request) (*session.Session, error) {
	if _, bearer := h.tokens.bearer(r); bearer {
		return nil, nil
	}
	a := h.authenticate(r)
	if a.err != nil {
		return nil, a.err
	}
	if a.sess == nil || a.degraded || a.sess.IsToken() {
		return nil, nil
	}
	return a.sess, nil
}

// sameUser: a step-up proved the user of s. The same user id, and the
// same way of proving it: for OIDC the same provider and sub, for an
// account a session an account signed in (a hand-off's user id names
// someone in the app's terms, not necessarily this account).
func sameUser(s *session.Session, who signedIn) bool {
	if s.IsToken() || s.UserID != who.userID {
		return false
	}
	if who.provider != "" {
		return s.Provider == who.provider && s.Subject == who.subject
	}
	return s.Provider == "" && accountMethod(s.AuthMethod)
}

// refreshed drops what this process remembers of a session that changed
// but goes on (a step-up), so that the next request reads it from the
// store. Unlike forget, its upgraded connections stay open.
func (h *Handler) refreshed(id string) {
	h.grace.forget(id)
	if h.cache != nil && h.cache.hub != nil {
		h.cache.hub.dropEverywhere([]string{id})
	} else {
		h.cache.drop(id)
	}
}

// credentialSecret is the secret half of a cookie value "<id>.<secret>".
func credentialSecret(cookie string) string {
	for i := 0; i < len(cookie); i++ {
		if cookie[i] == '.' {
			return cookie[i+1:]
		}
	}
	return ""
}

// mintFailed answers a sign-in the store could not complete, or one the
// limits refused, as the hand-off does.
func (h *Handler) mintFailed(w http.ResponseWriter, r *http.Request, err error) error {
	switch {
	case errors.Is(err, session.ErrLimitReached):
		return answer(w, r, problemTooManySessions)
	case errors.As(err, new(errRateLimited)):
		return tooMany(w, r, err)
	}
	h.metrics.request(outcomeStoreError)
	return h.storeUnavailable(w, r, err)
}
