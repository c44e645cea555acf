package sessionauth

import (
	"context"
	"errors"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/sessionauth/caddy-sessionauth/oidc"
	"github.com/sessionauth/caddy-sessionauth/session"
)

// API tokens made by a provider's session are rechecked as that session
// is (SPEC 11 Recheck), whether or not the session still lives: a user
// the provider disabled, or who no longer passes allow_*, loses the
// tokens too, and their roles follow the provider's.
//
// A provider that rotates refresh tokens keeps one chain per sign-in:
// two holders of one refresh token would spend it twice. So a token
// keeps, sealed under its own secret, the session's token key: while
// the session lives, the token's recheck spends the session's chain,
// claimed on the session's record (MarkChecked), and keeps a copy; once
// the session is gone (signed out, idle, expired, ended), the token
// takes over the newest link it can find (the session's record while
// it is retained, else its copy) and carries the chain on by itself.

// sealTokenChain gives a token just made by the provider session parent
// (whose cookie the request carries) its copy of the session's chain and
// the session's token key. Without it the token could never be checked
// again, so a token that cannot get it is not made.
func (o *oidcSignIn) sealTokenChain(ctx context.Context, r *http.Request, parent *session.Session, out tokenResponse) error {
	p := o.provider(parent.Provider)
	if p == nil || p.cfg.Recheck <= 0 {
		return nil
	}
	err := o.sealTokenChainOf(ctx, r, parent, out)
	if err != nil {
		// Nobody has its value yet: it goes, rather than live unchecked.
		if _, e := o.store.End(ctx, out.ID, o.now(), session.EndRevoked, session.ActorSelf, o.policy); e == nil {
			o.host.forget(out.ID)
		}
	}
	return err
}

func (o *oidcSignIn) sealTokenChainOf(ctx context.Context, r *http.Request, parent *session.Session, out tokenResponse) error {
	secret := o.host.cookieSecret(r, parent.ID)
	key, err := oidc.TokenKey(secret, parent.ID)
	if err != nil {
		return err
	}
	var t oidc.Tokens // the session holds none (signed in before recheck was set): neither does the token
	if parent.SealedTokens != "" {
		if t, err = oidc.OpenTokensWith(key, parent.ID, parent.SealedTokens); err != nil {
			return err
		}
	}
	t.ID = "" // logout_at_provider's hint is the session's business
	t.Parent, t.ParentKey, t.Synced = parent.ID, key, parent.CheckedAt
	cred := out.Token[len(tokenPrefix):]
	sealed, err := oidc.SealTokens(credentialSecret(cred), out.ID, t)
	if err != nil {
		return err
	}
	// The token's verdict is its session's last one: checked as of then.
	won, err := o.store.MarkChecked(ctx, out.ID, time.Time{}, parent.CheckedAt, sealed)
	if err == nil && !won {
		err = errors.New("the new token's record moved before its provider tokens were stored")
	}
	return err
}

// vouchedToken applies recheck to a request's valid API token made by a
// provider's session.
func (o *oidcSignIn) vouchedToken(r *http.Request, p *oidcProvider, a auth) auth {
	s, now := a.sess, o.now()
	if p.cfg.Recheck <= 0 || now.Sub(s.CheckedAt) < time.Duration(p.cfg.Recheck) || a.degraded || !p.answering(now) {
		return a
	}
	var t oidc.Tokens // none sealed (made before tokens were rechecked): the check refuses it
	if s.SealedTokens != "" {
		var err error
		if t, err = oidc.OpenTokens(a.secret, s.ID, s.SealedTokens); err != nil {
			if c := o.logger.Check(zap.WarnLevel, "API token's provider tokens do not open"); c != nil {
				c.Write(zap.String("session_id", s.ID), zap.String("provider", s.Provider))
			}
			return a
		}
	}
	res := p.refreshOnce(s.ID, func() refreshResult { return o.refreshToken(r, p, a, t) })
	switch res.outcome {
	case refreshRefused:
		return auth{outcome: outcomeRevoked, ended: session.EndIDP}
	case refreshGone:
		return auth{outcome: outcomeRevoked, ended: session.EndRevoked}
	}
	if res.err != nil {
		return auth{err: res.err}
	}
	if res.sess != nil {
		a.sess = res.sess
	}
	return a
}

// refreshToken rechecks the token of a: its claim first (as refresh
// does for a session), then the chain it spends (see above).
func (o *oidcSignIn) refreshToken(r *http.Request, p *oidcProvider, a auth, t oidc.Tokens) refreshResult {
	s := a.sess
	ctx := context.WithoutCancel(r.Context())
	kept := refreshResult{outcome: refreshKept, tokens: t}
	claim, won, res := o.claimCheck(ctx, s, a.secret, t)
	if !won {
		return res
	}
	giveBack := func() {
		sctx := ctx
		_, _ = o.store.MarkChecked(sctx, s.ID, claim, s.CheckedAt, "")
	}

	// The session that made the token, when its record is still kept.
	var parent *session.Session
	chain := t
	if t.Parent != "" {
		sctx := ctx
		ps, err := o.store.Get(sctx, t.Parent)
		switch {
		case err == nil:
			if pt, err := oidc.OpenTokensWith(t.ParentKey, ps.ID, ps.SealedTokens); err == nil {
				parent = ps
				if ps.Active() && !o.policy.Expired(ps, o.now()) || ps.CheckedAt.After(t.Synced) {
					chain = pt // the session's link is the newest
				}
			}
		case !errors.Is(err, session.ErrNotFound):
			giveBack()
			return kept
		}
	}
	live := parent != nil && parent.Active() && !o.policy.Expired(parent, o.now())

	copyOf := func(from oidc.Tokens, synced time.Time) oidc.Tokens {
		from.ID, from.Parent, from.ParentKey, from.Synced = "", t.Parent, t.ParentKey, synced
		return from
	}
	if live && o.now().Sub(parent.CheckedAt) < time.Duration(p.cfg.Recheck) {
		// The session was vouched for within recheck (its own check
		// applied allow_* and the roles): the token takes that verdict.
		return o.storeTokenCheck(ctx, s, a.secret, claim, copyOf(chain, parent.CheckedAt), parent.Roles)
	}
	var pclaim time.Time
	if live {
		// The session's chain: claimed on the session's record, so that
		// the session and its tokens spend each link once.
		var pwon bool
		pclaim, pwon, _ = o.claimCheck(ctx, parent, "", chain)
		if !pwon {
			return kept // being checked: the token stays checked as of its claim
		}
	}

	nt, claims, refused, err := askProvider(ctx, p, s, chain)
	roles := s.Roles
	if err == nil && claims != nil {
		var allowed bool
		if allowed, roles = recheckVerdict(p, s, claims); !allowed {
			refused, err = true, errors.New("the user no longer passes allow_*")
		}
	}
	if refused {
		if live {
			// The session's own refusal: it ends, and its tokens with it.
			return o.endRefused(r, p, parent, err)
		}
		return o.endRefused(r, p, s, err)
	}
	if err != nil {
		p.down(o.now())
		o.logger.Warn("OIDC provider did not answer an API token's recheck: token kept, asked again later",
			zap.String("session_id", s.ID), zap.String("provider", p.cfg.Name), zap.Error(err))
		giveBack()
		if live {
			sctx := ctx
			_, _ = o.store.MarkChecked(sctx, parent.ID, pclaim, parent.CheckedAt, "")
		}
		return kept
	}
	fresh := oidc.Tokens{Refresh: nt.Refresh, Access: nt.Access}
	if !nt.Expiry.IsZero() {
		fresh.Expiry = o.now().Add(time.Until(nt.Expiry)).UTC()
	}
	synced := t.Synced
	if parent != nil {
		synced = parent.CheckedAt // the session's link is older than the token's from now on
	}
	if live {
		pt, _ := oidc.OpenTokensWith(t.ParentKey, parent.ID, parent.SealedTokens)
		pfresh := fresh
		pfresh.ID = pt.ID // the session's ID token stays its logout hint
		done := laterThan(pclaim, o.now())
		sealed, err := oidc.SealTokensWith(t.ParentKey, parent.ID, pfresh)
		if err == nil {
			sctx := ctx
			_, err = o.store.MarkChecked(sctx, parent.ID, pclaim, done, sealed)
		}
		if err != nil {
			o.logger.Error("the new tokens of an API token's session not stored: its next check may end it",
				zap.String("session_id", parent.ID), zap.Error(err))
		}
		if roles != parent.Roles {
			o.replaceRoles(ctx, parent, roles)
		}
		synced = done
	}
	return o.storeTokenCheck(ctx, s, a.secret, claim, copyOf(fresh, synced), roles)
}

// claimCheck claims the check of s (CheckedAt from the value read to
// now, compare-and-set). When it is not won, res is what the caller
// answers (the session gone, kept, or as another request stored it).
func (o *oidcSignIn) claimCheck(ctx context.Context, s *session.Session, secret string, t oidc.Tokens) (claim time.Time, won bool, res refreshResult) {
	claim = laterThan(s.CheckedAt, o.now())
	sctx := ctx
	won, err := o.store.MarkChecked(sctx, s.ID, s.CheckedAt, claim, "")
	switch {
	case errors.Is(err, session.ErrNotFound):
		o.host.forget(s.ID)
		return claim, false, refreshResult{outcome: refreshGone}
	case err != nil:
		o.logger.Warn("not checked at its provider: the store did not answer",
			zap.String("session_id", s.ID), zap.String("provider", s.Provider), zap.Error(err))
		return claim, false, refreshResult{outcome: refreshKept, tokens: t}
	case !won:
		o.cache.drop(s.ID)
		if secret == "" {
			return claim, false, refreshResult{outcome: refreshKept, tokens: t}
		}
		return claim, false, o.reread(ctx, s, secret, t)
	}
	return claim, true, refreshResult{}
}

// laterThan is now to the millisecond, at least a millisecond after was.
func laterThan(was, now time.Time) time.Time {
	was, now = was.Truncate(time.Millisecond), now.Truncate(time.Millisecond)
	if !now.After(was) {
		return was.Add(time.Millisecond)
	}
	return now
}

// storeTokenCheck stores a token's checked copy of the chain under its
// claim, and the roles the check found.
func (o *oidcSignIn) storeTokenCheck(ctx context.Context, s *session.Session, secret string, claim time.Time, t oidc.Tokens, roles string) refreshResult {
	sealed, err := oidc.SealTokens(secret, s.ID, t)
	if err != nil {
		o.logger.Error("sealing an API token's new provider tokens", zap.String("session_id", s.ID), zap.Error(err))
		return refreshResult{outcome: refreshKept}
	}
	done := laterThan(claim, o.now())
	sctx := ctx
	won, err := o.store.MarkChecked(sctx, s.ID, claim, done, sealed)
	switch {
	case errors.Is(err, session.ErrNotFound):
		o.host.forget(s.ID)
		return refreshResult{outcome: refreshGone}
	case err != nil || !won:
		o.logger.Error("API token's new provider tokens not stored: its next check may end it",
			zap.String("session_id", s.ID), zap.Bool("claim_lost", err == nil), zap.Error(err))
	}
	next := s.Clone()
	next.SealedTokens, next.CheckedAt = sealed, done
	if roles != s.Roles {
		ns, ok := o.replaceRoles(ctx, s, roles)
		if !ok {
			return refreshResult{outcome: refreshGone}
		}
		next.Roles = ns.Roles
	}
	o.cache.drop(s.ID)
	return refreshResult{outcome: refreshDone, sess: next, tokens: t}
}
