package sessionauth

import (
	"context"
	"crypto/sha256"
	"errors"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/sessionauth/caddy-sessionauth/oidc"
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
	tokens  oidc.Tokens      // the tokens to use (new, or the ones read)
	err     error            // a store error that leaves the session's fate unknown
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
func (o *oidcSignIn) vouched(r *http.Request, a auth) auth {
	s := a.sess
	if s == nil || s.Provider == "" {
		return a
	}
	p := o.provider(s.Provider)
	if p == nil {
		return a
	}
	if s.IsToken() {
		return o.vouchedToken(r, p, a)
	}
	if p.cfg.Recheck <= 0 && !p.cfg.PassAccessToken {
		return a
	}
	now := o.now()
	recheckDue := p.cfg.Recheck > 0 && now.Sub(s.CheckedAt) >= time.Duration(p.cfg.Recheck)
	if !recheckDue && !p.cfg.PassAccessToken {
		return a
	}
	var t oidc.Tokens // none sealed (signed in before recheck was set): the check refuses it
	var err error
	if s.SealedTokens != "" {
		t, err = oidc.OpenTokens(a.secret, s.ID, s.SealedTokens)
	}
	if err != nil {
		// Only the cookie that minted the session opens them; a session
		// without a cookie secret (an API token) never gets here.
		if c := o.logger.Check(zap.WarnLevel, "OIDC session's provider tokens do not open"); c != nil {
			c.Write(zap.String("session_id", s.ID), zap.String("provider", s.Provider))
		}
		return a
	}
	if (recheckDue || (p.cfg.PassAccessToken && accessDue(t, now))) && !a.degraded && p.answering(now) {
		res := p.refreshOnce(s.ID, func() refreshResult { return o.refresh(r, p, a, t) })
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
func accessDue(t oidc.Tokens, now time.Time) bool {
	return t.Access == "" || (!t.Expiry.IsZero() && !now.Before(t.Expiry.Add(-accessTokenMargin)))
}

// refreshOnce runs fn for a session unless a refresh of it is already
// under way in this process, whose result it then shares.
func (p *oidcProvider) refreshOnce(id string, fn func() refreshResult) refreshResult {
	v, _, _ := p.refreshes.Do(id, func() (any, error) { return fn(), nil })
	res, _ := v.(refreshResult)
	return res
}

// answering: the provider is not in its pause after failing to answer.
func (p *oidcProvider) answering(now time.Time) bool {
	return now.UnixNano() >= p.downUntil.Load()
}

func (p *oidcProvider) down(now time.Time) {
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
func (o *oidcSignIn) refresh(r *http.Request, p *oidcProvider, a auth, t oidc.Tokens) refreshResult {
	s := a.sess
	// The requests that share this refresh must not lose it when the
	// first one's client goes away.
	ctx := context.WithoutCancel(r.Context())
	kept := refreshResult{outcome: refreshKept, tokens: t}
	was := s.CheckedAt.Truncate(time.Millisecond)
	claim := o.now().Truncate(time.Millisecond)
	if !claim.After(was) {
		claim = was.Add(time.Millisecond)
	}
	sctx := ctx
	won, err := o.store.MarkChecked(sctx, s.ID, s.CheckedAt, claim, "")
	switch {
	case errors.Is(err, session.ErrNotFound):
		o.host.forget(s.ID)
		return refreshResult{outcome: refreshGone}
	case err != nil:
		// Not asked without the claim: a rotating refresh token spent
		// here might be spent again by another gateway.
		o.logger.Warn("OIDC session not checked at its provider: the store did not answer",
			zap.String("session_id", s.ID), zap.String("provider", p.cfg.Name), zap.Error(err))
		return kept
	case !won:
		// Another request or gateway is asking, or has asked: use what
		// it stored, if it has.
		o.cache.drop(s.ID)
		return o.reread(ctx, s, a.secret, t)
	}

	nt, claims, refused, err := askProvider(ctx, p, s, t)
	if refused {
		return o.endRefused(r, p, s, err)
	}
	roles := s.Roles
	if err == nil && claims != nil {
		var allowed bool
		if allowed, roles = recheckVerdict(p, s, claims); !allowed {
			return o.endRefused(r, p, s, errors.New("the user no longer passes allow_*"))
		}
	}
	if err != nil {
		p.down(o.now())
		if c := o.logger.Check(zap.WarnLevel, "OIDC provider did not answer a session's refresh: session kept, asked again later"); c != nil {
			c.Write(zap.String("session_id", s.ID), zap.String("provider", p.cfg.Name), zap.Error(err))
		}
		// Give the check back, so that the next request after the
		// pause asks again rather than one recheck interval later.
		sctx := ctx
		_, _ = o.store.MarkChecked(sctx, s.ID, claim, s.CheckedAt, "")
		return kept
	}
	fresh := oidc.Tokens{Refresh: nt.Refresh, Access: nt.Access, ID: t.ID}
	if !nt.Expiry.IsZero() {
		// x/oauth2 dates expires_in by the wall clock; the checks above
		// read the handler's.
		fresh.Expiry = o.now().Add(time.Until(nt.Expiry)).UTC()
	}
	if nt.IDToken != "" && t.ID != "" && p.cfg.LogoutAtProvider {
		fresh.ID = nt.IDToken // checked by Refresh; the newest is logout_at_provider's hint
	}
	sealed, err := oidc.SealTokens(a.secret, s.ID, fresh)
	if err != nil {
		o.logger.Error("sealing an OIDC session's new tokens", zap.String("session_id", s.ID), zap.Error(err))
		return kept
	}
	done := o.now().Truncate(time.Millisecond)
	if !done.After(claim) {
		done = claim.Add(time.Millisecond)
	}
	sctx = ctx
	won, err = o.store.MarkChecked(sctx, s.ID, claim, done, sealed)
	switch {
	case errors.Is(err, session.ErrNotFound):
		o.host.forget(s.ID)
		return refreshResult{outcome: refreshGone}
	case err != nil || !won:
		// The provider may have rotated the refresh token that the store
		// still holds: the next check will find it refused.
		o.logger.Error("OIDC session's new tokens not stored: its next check may end it",
			zap.String("session_id", s.ID), zap.String("provider", p.cfg.Name), zap.Bool("claim_lost", err == nil), zap.Error(err))
	}
	next := s.Clone()
	next.SealedTokens, next.CheckedAt = sealed, done
	if roles != s.Roles {
		if ns, ok := o.replaceRoles(ctx, s, roles); ok {
			next.Roles = ns.Roles
		} else {
			return refreshResult{outcome: refreshGone}
		}
	}
	o.cache.drop(s.ID)
	o.grace.seen(next, sha256.Sum256([]byte(a.secret)), o.now())
	if c := o.logger.Check(zap.DebugLevel, "OIDC session checked at its provider"); c != nil {
		c.Write(zap.String("session_id", s.ID), zap.String("provider", p.cfg.Name), zap.Bool("refresh_token_rotated", fresh.Refresh != t.Refresh))
	}
	return refreshResult{outcome: refreshDone, sess: next, tokens: fresh}
}

// reread takes the session's tokens as the request or gateway that won
// the claim stored them, when it has.
func (o *oidcSignIn) reread(ctx context.Context, s *session.Session, secret string, t oidc.Tokens) refreshResult {
	kept := refreshResult{outcome: refreshKept, tokens: t}
	sctx := ctx
	cur, err := o.store.Get(sctx, s.ID)
	switch {
	case errors.Is(err, session.ErrNotFound):
		return refreshResult{outcome: refreshGone}
	case err != nil:
		return kept
	case !cur.Active():
		o.host.forget(s.ID)
		return refreshResult{outcome: refreshGone}
	case cur.SealedTokens == s.SealedTokens:
		return kept
	}
	nt, err := oidc.OpenTokens(secret, s.ID, cur.SealedTokens)
	if err != nil {
		return kept
	}
	next := s.Clone()
	next.SealedTokens, next.CheckedAt = cur.SealedTokens, cur.CheckedAt
	return refreshResult{outcome: refreshKept, sess: next, tokens: nt}
}

// askProvider runs the refresh_token grant for s (package oidc):
// refused reports the provider's refusal, as opposed to a provider that
// did not answer or failed. claims are what the provider now says of
// the user; nil when it said nothing of the user, and then the
// session's roles stand.
func askProvider(ctx context.Context, p *oidcProvider, s *session.Session, t oidc.Tokens) (nt *oidc.Refreshed, claims map[string]any, refused bool, err error) {
	nt, refused, err = p.rp.Refresh(ctx, t.Refresh, s.Subject)
	if nt != nil {
		claims = nt.Claims
	}
	return nt, claims, refused, err
}

// recheckVerdict applies the provider's refreshed claims to s (SPEC 11
// Recheck): whether its user still passes allow_*, and the roles the
// provider now gives (none when the roles claim is gone).
func recheckVerdict(p *oidcProvider, s *session.Session, claims map[string]any) (allowed bool, roles string) {
	allowed, roles = p.rp.Recheck(s.UserID, s.Email, claims)
	return allowed, sanitise(roles, maxRoles)
}

// replaceRoles stores the roles a recheck found, so that later requests
// (X-Auth-Roles, session_require roles) and every gateway see them; false
// when the session ended meanwhile.
func (o *oidcSignIn) replaceRoles(ctx context.Context, s *session.Session, roles string) (*session.Session, bool) {
	sctx := ctx
	ns, err := o.store.SetRoles(sctx, s.ID, roles)
	switch {
	case errors.Is(err, session.ErrNotFound):
		o.host.forget(s.ID)
		return nil, false
	case err != nil:
		// Kept with the old roles until the next check, which tries again
		// (CheckedAt is left where it was only when nothing was stored).
		o.logger.Error("OIDC session's new roles not stored", zap.String("session_id", s.ID), zap.Error(err))
		return s, true
	}
	o.host.refreshed(s.ID)
	if c := o.logger.Check(zap.InfoLevel, "OIDC session's roles replaced at a recheck"); c != nil {
		c.Write(zap.String("session_id", s.ID), zap.String("provider", s.Provider))
	}
	return ns, true
}

// endRefused ends a session, or an API token whose session is gone, whose
// provider refused to vouch for it any longer: end_reason idp, actor idp,
// its audit event and notice.
func (o *oidcSignIn) endRefused(r *http.Request, p *oidcProvider, s *session.Session, why error) refreshResult {
	now := o.now()
	msg := "OIDC provider refused a session's refresh: session ended"
	if s.IsToken() {
		msg = "OIDC provider refused an API token's recheck: token ended"
	}
	o.logger.Info(msg,
		zap.String("session_id", s.ID), zap.String("user_id", s.UserID), zap.String("provider", p.cfg.Name), zap.Error(why))
	sctx := context.WithoutCancel(r.Context())
	ended, err := o.store.End(sctx, s.ID, now, session.EndIDP, session.ActorIDP, o.policy)
	switch {
	case err == nil:
		o.host.sessionEnded(ended, ending{reason: session.EndIDP, actor: session.ActorIDP, at: now, ctx: r.Context()})
		if s.IsToken() {
			break
		}
		// The API tokens this session made end with it: they have no
		// refresh token of their own to be checked with.
		if _, err := o.endProviderSessions(context.WithoutCancel(r.Context()), p.cfg.Name,
			oidc.LogoutToken{Sub: s.Subject, Sid: s.ProviderSID}, session.EndIDP, (*session.Session).IsToken); err != nil {
			o.logger.Error("ending the API tokens of a session the provider refused", zap.String("session_id", s.ID), zap.Error(err))
		}
	case errors.Is(err, session.ErrNotFound):
		o.host.forget(s.ID)
	default:
		// The session could not be ended: the request must still not
		// go through with it.
		o.host.forget(s.ID)
		return refreshResult{outcome: refreshKept, err: err}
	}
	return refreshResult{outcome: refreshRefused}
}
