package sessionauth

import (
	"context"
	"crypto/sha256"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"go.uber.org/zap"
	"golang.org/x/oauth2"

	"github.com/sessionauth/caddy-sessionauth/session"
)

// The provider's word on a signed-in user, asked again on a request
// (SPEC 11: recheck and pass_access_token).
const (
	// accessTokenMargin: an access token this close to its expiry is
	// refreshed before it is forwarded, so that it does not expire on its
	// way through the upstream.
	accessTokenMargin = 30 * time.Second
	// providerRetry is how long a gateway leaves a provider alone after it
	// did not answer (at most recheck, when that is shorter): requests
	// meanwhile go on with the session as it is, rather than each waiting
	// for a provider that is down.
	providerRetry = 10 * time.Second
)

// refreshOutcome is what asking the provider came to.
type refreshOutcome int

const (
	refreshKept    refreshOutcome = iota // nothing changed: provider down, store busy, or another gateway is asking
	refreshDone                          // the provider vouched; new tokens stored
	refreshRefused                       // the provider refused: the session has ended (idp)
	refreshGone                          // the session ended meanwhile
)

// refreshResult is shared by the requests of one session that waited on
// the same refresh.
type refreshResult struct {
	outcome refreshOutcome
	sess    *session.Session // the session as it now is, when it changed
	tokens  tokens           // the tokens to use (new, or the ones read)
	err     error            // a store error that leaves the session's fate unknown
}

// authenticateVouched is authenticate, then vouched for a session
// signed in at a provider: for the requests that go on with the session
// (the upstream's, /me, the sessions page), not for a sign-out.
func (h *Handler) authenticateVouched(r *http.Request) auth {
	a := h.authenticate(r)
	if a.sess != nil && a.sess.Provider != "" {
		if a.sess.IsToken() && a.secret == "" {
			// A token's own secret opens what it keeps sealed.
			if cred, ok := h.bearer(r); ok {
				a.secret = credentialSecret(cred)
			}
		}
		a = h.vouched(r, a)
	}
	return a
}

// vouched applies recheck and pass_access_token to a request's valid
// session. The hot path pays one field check for sessions that did not
// sign in at a provider with either option.
//
// The in-process cache (cache.go) and the grace cache (grace.go) hand
// out the session as it was when cached; this check runs on whatever
// they return, so a recheck that falls due while a session is cached is
// not skipped. A stale cached copy (another gateway did the check) only
// loses the store's compare-and-set, and its cache entry is dropped so
// that the next request reads the session afresh. A session served from
// the grace cache (the store does not answer) is not checked: without
// the store, neither the claim nor a rotated refresh token could be
// written; it is checked once the store is back.
func (h *Handler) vouched(r *http.Request, a auth) auth {
	s := a.sess
	if s == nil || s.Provider == "" {
		return a
	}
	p := h.providers[s.Provider]
	if p == nil {
		return a
	}
	if s.IsToken() {
		return h.vouchedToken(r, p, a)
	}
	if p.cfg.Recheck <= 0 && !p.cfg.PassAccessToken {
		return a
	}
	now := h.now()
	recheckDue := p.cfg.Recheck > 0 && now.Sub(s.CheckedAt) >= time.Duration(p.cfg.Recheck)
	if !recheckDue && !p.cfg.PassAccessToken {
		return a
	}
	var t tokens // none sealed (signed in before recheck was set): the check refuses it
	var err error
	if s.SealedTokens != "" {
		t, err = openTokens(a.secret, s.ID, s.SealedTokens)
	}
	if err != nil {
		// Only the cookie that minted the session opens them; a session
		// without a cookie secret (an API token) never gets here.
		if c := h.logger.Check(zap.WarnLevel, "OIDC session's provider tokens do not open"); c != nil {
			c.Write(zap.String("session_id", s.ID), zap.String("provider", s.Provider))
		}
		return a
	}
	if (recheckDue || (p.cfg.PassAccessToken && accessDue(t, now))) && !a.degraded && p.answering(now) {
		res := p.refreshOnce(s.ID, func() refreshResult { return h.refresh(r, p, a, t) })
		switch res.outcome {
		case refreshRefused:
			return auth{outcome: outcomeRevoked, clearCookie: true, ended: session.EndIDP}
		case refreshGone: // ended meanwhile, for a reason of its own
			return auth{outcome: outcomeRevoked, clearCookie: true, ended: session.EndRevoked}
		}
		if res.err != nil {
			return auth{err: res.err}
		}
		if res.sess != nil {
			a.sess = res.sess
		}
		t = res.tokens
	}
	if p.cfg.PassAccessToken && t.Access != "" && (t.Expiry.IsZero() || now.Before(t.Expiry)) {
		a.access = t.Access
	}
	return a
}

// accessDue: the access token is missing, expired, or about to expire.
func accessDue(t tokens, now time.Time) bool {
	return t.Access == "" || (!t.Expiry.IsZero() && !now.Before(t.Expiry.Add(-accessTokenMargin)))
}

// refreshOnce runs fn for a session unless a refresh of it is already
// under way in this process, whose result it then shares.
func (p *provider) refreshOnce(id string, fn func() refreshResult) refreshResult {
	v, _, _ := p.refreshes.Do(id, func() (any, error) { return fn(), nil })
	res, _ := v.(refreshResult)
	return res
}

// answering: the provider is not in its pause after failing to answer.
func (p *provider) answering(now time.Time) bool {
	return now.UnixNano() >= p.downUntil.Load()
}

func (p *provider) down(now time.Time) {
	pause := providerRetry
	if r := time.Duration(p.cfg.Recheck); r > 0 && r < pause {
		pause = r
	}
	p.downUntil.Store(now.Add(pause).UnixNano())
}

// refresh asks the provider about a session: first a claim in the store
// (CheckedAt moved from the value read to now, compare-and-set), so that
// of the gateways sharing the store one spends the refresh token; then
// the refresh_token grant; then the new tokens stored under the claim.
func (h *Handler) refresh(r *http.Request, p *provider, a auth, t tokens) refreshResult {
	s := a.sess
	// The requests that share this refresh must not lose it when the
	// first one's client goes away.
	ctx := context.WithoutCancel(r.Context())
	kept := refreshResult{outcome: refreshKept, tokens: t}
	was := s.CheckedAt.Truncate(time.Millisecond)
	claim := h.now().Truncate(time.Millisecond)
	if !claim.After(was) {
		claim = was.Add(time.Millisecond)
	}
	sctx := ctx
	won, err := h.store.MarkChecked(sctx, s.ID, s.CheckedAt, claim, "")
	switch {
	case errors.Is(err, session.ErrNotFound):
		h.forget(s.ID)
		return refreshResult{outcome: refreshGone}
	case err != nil:
		// Not asked without the claim: a rotating refresh token spent
		// here might be spent again by another gateway.
		h.logger.Warn("OIDC session not checked at its provider: the store did not answer",
			zap.String("session_id", s.ID), zap.String("provider", p.cfg.Name), zap.Error(err))
		return kept
	case !won:
		// Another request or gateway is asking, or has asked: use what
		// it stored, if it has.
		h.cache.drop(s.ID)
		return h.reread(ctx, s, a.secret, t)
	}

	nt, claims, refused, err := h.askProvider(ctx, p, s, t)
	if refused {
		return h.endRefused(r, p, s, err)
	}
	roles := s.Roles
	if err == nil && claims != nil {
		var allowed bool
		if allowed, roles = p.recheckVerdict(s, claims); !allowed {
			return h.endRefused(r, p, s, errors.New("the user no longer passes allow_*"))
		}
	}
	if err != nil {
		p.down(h.now())
		if c := h.logger.Check(zap.WarnLevel, "OIDC provider did not answer a session's refresh: session kept, asked again later"); c != nil {
			c.Write(zap.String("session_id", s.ID), zap.String("provider", p.cfg.Name), zap.Error(err))
		}
		// Give the check back, so that the next request after the
		// pause asks again rather than one recheck interval later.
		sctx := ctx
		_, _ = h.store.MarkChecked(sctx, s.ID, claim, s.CheckedAt, "")
		return kept
	}
	fresh := tokens{Refresh: nt.RefreshToken, Access: nt.AccessToken, ID: t.ID}
	if !nt.Expiry.IsZero() {
		// x/oauth2 dates expires_in by the wall clock; the checks above
		// read the handler's.
		fresh.Expiry = h.now().Add(time.Until(nt.Expiry)).UTC()
	}
	if raw, _ := nt.Extra("id_token").(string); raw != "" && t.ID != "" && p.cfg.LogoutAtProvider {
		fresh.ID = raw // checked in askProvider; the newest is logout_at_provider's hint
	}
	sealed, err := sealTokens(a.secret, s.ID, fresh)
	if err != nil {
		h.logger.Error("sealing an OIDC session's new tokens", zap.String("session_id", s.ID), zap.Error(err))
		return kept
	}
	done := h.now().Truncate(time.Millisecond)
	if !done.After(claim) {
		done = claim.Add(time.Millisecond)
	}
	sctx = ctx
	won, err = h.store.MarkChecked(sctx, s.ID, claim, done, sealed)
	switch {
	case errors.Is(err, session.ErrNotFound):
		h.forget(s.ID)
		return refreshResult{outcome: refreshGone}
	case err != nil || !won:
		// The provider may have rotated the refresh token that the store
		// still holds: the next check will find it refused.
		h.logger.Error("OIDC session's new tokens not stored: its next check may end it",
			zap.String("session_id", s.ID), zap.String("provider", p.cfg.Name), zap.Bool("claim_lost", err == nil), zap.Error(err))
	}
	next := s.Clone()
	next.SealedTokens, next.CheckedAt = sealed, done
	if roles != s.Roles {
		if ns, ok := h.replaceRoles(ctx, s, roles); ok {
			next.Roles = ns.Roles
		} else {
			return refreshResult{outcome: refreshGone}
		}
	}
	h.cache.drop(s.ID)
	h.grace.seen(next, sha256.Sum256([]byte(a.secret)), h.now())
	if c := h.logger.Check(zap.DebugLevel, "OIDC session checked at its provider"); c != nil {
		c.Write(zap.String("session_id", s.ID), zap.String("provider", p.cfg.Name), zap.Bool("refresh_token_rotated", fresh.Refresh != t.Refresh))
	}
	return refreshResult{outcome: refreshDone, sess: next, tokens: fresh}
}

// reread takes the session's tokens as the request or gateway that won
// the claim stored them, when it has.
func (h *Handler) reread(ctx context.Context, s *session.Session, secret string, t tokens) refreshResult {
	kept := refreshResult{outcome: refreshKept, tokens: t}
	sctx := ctx
	cur, err := h.store.Get(sctx, s.ID)
	switch {
	case errors.Is(err, session.ErrNotFound):
		return refreshResult{outcome: refreshGone}
	case err != nil:
		return kept
	case !cur.Active():
		h.forget(s.ID)
		return refreshResult{outcome: refreshGone}
	case cur.SealedTokens == s.SealedTokens:
		return kept
	}
	nt, err := openTokens(secret, s.ID, cur.SealedTokens)
	if err != nil {
		return kept
	}
	next := s.Clone()
	next.SealedTokens, next.CheckedAt = cur.SealedTokens, cur.CheckedAt
	return refreshResult{outcome: refreshKept, sess: next, tokens: nt}
}

// askProvider runs the refresh_token grant. refused reports the
// provider's refusal (400 or 401, as invalid_grant is), as opposed to a
// provider that did not answer or failed (5xx, timeout).
//
// claims are what the provider now says of the user: the refreshed ID
// token's, with UserInfo's where the ID token leaves them out (as at the
// sign-in); nil when it said nothing of the user (no ID token, no
// UserInfo endpoint), and then the session's roles stand.
func (h *Handler) askProvider(ctx context.Context, p *provider, s *session.Session, t tokens) (tok *oauth2.Token, claims map[string]any, refused bool, err error) {
	if t.Refresh == "" {
		// Nothing to ask the provider with: the session cannot be
		// vouched for, which is a refusal (never a provider that does
		// not answer, whose pause would spare every session).
		return nil, nil, true, errors.New("the session holds no refresh token (signed in before recheck or pass_access_token was set)")
	}
	op, verifier, err := p.discover(ctx)
	if err != nil {
		return nil, nil, false, err
	}
	ctx, cancel := context.WithTimeout(oidc.ClientContext(ctx, p.client), providerTimeout)
	defer cancel()
	cfg := &oauth2.Config{ClientID: p.cfg.ClientID, ClientSecret: p.cfg.ClientSecret, Endpoint: op.Endpoint()}
	cfg.Endpoint.AuthStyle = p.authStyle(op)
	// A token without an access token is never valid: the source asks.
	tok, err = cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: t.Refresh}).Token()
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.Response != nil &&
			(re.Response.StatusCode == http.StatusBadRequest || re.Response.StatusCode == http.StatusUnauthorized) {
			return nil, nil, true, err
		}
		return nil, nil, false, err
	}
	// OIDC Core 12.2: an ID token in the answer must name the same user.
	// One that fails the checks is dropped (kept out of the tokens).
	if raw, _ := tok.Extra("id_token").(string); raw != "" {
		idt, verr := verifyToken(ctx, verifier, raw)
		if verr == nil && idt.Subject != s.Subject {
			return nil, nil, true, errors.New("the refreshed ID token names another user")
		}
		if verr == nil {
			_ = idt.Claims(&claims)
		} else {
			tok = tok.WithExtra(map[string]any{})
		}
	}
	if p.needsUserInfo(claims) && op.UserInfoEndpoint() != "" {
		ui, uerr := op.UserInfo(ctx, oauth2.StaticTokenSource(tok))
		var more map[string]any
		switch {
		case uerr == nil && ui.Subject != s.Subject:
			return nil, nil, true, errors.New("UserInfo names another user")
		case uerr == nil && ui.Claims(&more) == nil:
			if claims == nil {
				claims = map[string]any{}
			}
			for k, v := range more {
				if _, ok := claims[k]; !ok {
					claims[k] = v // the signed ID token's claims win
				}
			}
		}
	}
	return tok, claims, false, nil
}

// recheckVerdict applies the provider's refreshed claims to s (SPEC 11
// Recheck): whether its user still passes allow_*, and the roles the
// provider now gives (none when the roles claim is gone). allow_users
// names the session's user; an email the claims leave out is the one
// the sign-in verified.
func (p *provider) recheckVerdict(s *session.Session, claims map[string]any) (allowed bool, roles string) {
	who, _ := p.identity(claims)
	who.userID = s.UserID
	if _, ok := claims["email"]; !ok {
		who.email = s.Email
	}
	return p.allowed(who, claims), sanitise(who.roles, maxRoles)
}

// replaceRoles stores the roles a recheck found, so that later requests
// (X-Auth-Roles, session_require roles) and every gateway see them; false
// when the session ended meanwhile.
func (h *Handler) replaceRoles(ctx context.Context, s *session.Session, roles string) (*session.Session, bool) {
	sctx := ctx
	ns, err := h.store.SetRoles(sctx, s.ID, roles)
	switch {
	case errors.Is(err, session.ErrNotFound):
		h.forget(s.ID)
		return nil, false
	case err != nil:
		// Kept with the old roles until the next check, which tries again
		// (CheckedAt is left where it was only when nothing was stored).
		h.logger.Error("OIDC session's new roles not stored", zap.String("session_id", s.ID), zap.Error(err))
		return s, true
	}
	h.refreshed(s.ID)
	if c := h.logger.Check(zap.InfoLevel, "OIDC session's roles replaced at a recheck"); c != nil {
		c.Write(zap.String("session_id", s.ID), zap.String("provider", s.Provider))
	}
	return ns, true
}

// authStyle is how the client authenticates at the token endpoint, from
// the provider's discovery (client_secret_basic when it says nothing, as
// RFC 8414 has it). Left to x/oauth2's detection, every refusal would be
// asked twice, once each way.
func (p *provider) authStyle(op *oidc.Provider) oauth2.AuthStyle {
	if p.cfg.ClientSecret == "" {
		return oauth2.AuthStyleInParams // a public client names itself in the form
	}
	var meta struct {
		Methods []string `json:"token_endpoint_auth_methods_supported"`
	}
	_ = op.Claims(&meta)
	if len(meta.Methods) > 0 && !slices.Contains(meta.Methods, "client_secret_basic") && slices.Contains(meta.Methods, "client_secret_post") {
		return oauth2.AuthStyleInParams
	}
	return oauth2.AuthStyleInHeader
}

// endRefused ends a session, or an API token whose session is gone, whose
// provider refused to vouch for it any longer: end_reason idp, actor idp,
// its audit event and notice.
func (h *Handler) endRefused(r *http.Request, p *provider, s *session.Session, why error) refreshResult {
	now := h.now()
	msg := "OIDC provider refused a session's refresh: session ended"
	if s.IsToken() {
		msg = "OIDC provider refused an API token's recheck: token ended"
	}
	h.logger.Info(msg,
		zap.String("session_id", s.ID), zap.String("user_id", s.UserID), zap.String("provider", p.cfg.Name), zap.Error(why))
	sctx := context.WithoutCancel(r.Context())
	ended, err := h.store.End(sctx, s.ID, now, session.EndIDP, session.ActorIDP, h.policy)
	switch {
	case err == nil:
		h.sessionEnded(ended, ending{reason: session.EndIDP, actor: session.ActorIDP, at: now})
		if s.IsToken() {
			break
		}
		// The API tokens this session made end with it: they have no
		// refresh token of their own to be checked with.
		if _, err := h.endProviderSessions(context.WithoutCancel(r.Context()), p.cfg.Name,
			logoutToken{sub: s.Subject, sid: s.ProviderSID}, session.EndIDP, (*session.Session).IsToken); err != nil {
			h.logger.Error("ending the API tokens of a session the provider refused", zap.String("session_id", s.ID), zap.Error(err))
		}
	case errors.Is(err, session.ErrNotFound):
		h.forget(s.ID)
	default:
		// The session could not be ended: the request must still not
		// go through with it.
		h.forget(s.ID)
		return refreshResult{outcome: refreshKept, err: err}
	}
	return refreshResult{outcome: refreshRefused}
}
