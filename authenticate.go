package sessionauth

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/sessionauth/caddy-sessionauth/session"
)

// The one authentication path: every request that needs to know who is
// there (the upstream's through ServeHTTP, /me, the sessions page and the
// tokens, session_require, verify, logout) goes
//
//	identify (an API token's bearer, else the session cookies)
//	→ validate (the store, or the cache, or the grace cache; idle,
//	  lifetime, IP and country rules; guess_rate for unknown tokens)
//	→ vouch (authenticateVouched: the provider's recheck and access token,
//	  for sessions signed in at a provider)
//	→ identity (requireSession, setIdentity: the headers and placeholders).
//
// authenticate is identify and validate; a sign-out stops there (it must
// work for a session its provider no longer vouches for).

// auth is what the request's cookie proved.
type auth struct {
	sess        *session.Session // a valid session, or nil
	degraded    bool             // accepted from the grace cache: the store did not answer
	outcome     string           // why there is none, when sess is nil
	clearCookie bool             // a cookie was sent that names no live session: clear it
	ended       string           // the end_reason of the session the cookie named, when it ended
	err         error            // the store failed, or errRateLimited
	secret      string           // the valid session's cookie secret: it opens the provider tokens (never logged)
	access      string           // the provider's access token to forward (pass_access_token; never logged)
}

// authenticate checks the session cookie: one store round trip at most
// (one per cookie when a sibling domain tossed more of the same name).
// Only a request none of whose cookies matches a session counts towards
// guess_rate, and a block for guessing never refuses a valid session:
// the block is checked when the cookie proved nothing.
//
// Tossed cookies never pick the user: more cookies than are checked is
// no session (the one left unchecked may be the victim's own), and a
// valid cookie after one that failed is not believed (the failed one may
// be the victim's, ended or expired). Neither case clears a cookie (the
// clearing could hit the victim's own) or counts as a guess.
func (h *Handler) authenticate(r *http.Request) auth {
	if cred, ok := h.tokens.bearer(r); ok {
		return h.tokens.authenticate(r, cred) // the token alone: cookies are not looked at
	}
	cookies, sent := h.cookies.readCookies(r)
	if sent == 0 {
		return auth{outcome: outcomeUnauthenticated}
	}
	if sent > cookieTries {
		return h.tossed(r, "more session cookies than are checked on one request: none used")
	}
	var valid, known auth // the first valid session; an expired or ended one
	failed := false       // a cookie before this one named no valid session
	for _, raw := range cookies.values() {
		a, matched := cookieOnly(h.checkCookie(r, raw))
		switch {
		case a.err != nil:
			return a
		case a.sess != nil && failed && (valid.sess == nil || a.sess.UserID != valid.sess.UserID):
			return h.tossed(r, "a valid session cookie after one that failed: none used")
		case a.sess != nil && valid.sess == nil:
			valid = a
			valid.secret = credentialSecret(raw)
		case a.sess != nil && a.sess.UserID != valid.sess.UserID:
			// Two users' valid sessions: one was planted to swap the
			// victim into the planter's account.
			return h.tossed(r, "session cookies of two users on one request: none used")
		case a.sess == nil:
			failed = true
			if matched && known.outcome == "" {
				known = a
			}
		}
	}
	switch {
	case valid.sess != nil:
		return valid
	case known.outcome != "":
		return known
	}
	return h.guessed(r)
}

// tossed is the answer to session cookies that another site may have
// planted beside the real one: no session, nothing cleared or counted.
func (h *Handler) tossed(r *http.Request, msg string) auth {
	if c := h.log(r.Context()).Check(zap.WarnLevel, msg); c != nil {
		c.Write(zap.String("ip_address", clientIP(r)))
	}
	return auth{outcome: outcomeInvalid}
}

// checkCookie validates one session cookie value. matched reports a cookie that
// named a session the store knows (valid, expired or ended), as opposed to
// an unknown or malformed one.
func (h *Handler) checkCookie(r *http.Request, raw string) (a auth, matched bool) {
	id, hash, err := session.ParseCredential(raw)
	if err != nil {
		return auth{}, false
	}
	ip, now := clientIP(r), h.now()
	if s, ok := h.cache.get(id, hash, ip, now, h.policy); ok {
		return auth{sess: s}, true // valid, and nothing to write: no round trip
	}
	ctx := r.Context()
	v, err := h.store.Validate(ctx, id, hash, ip, now, h.policy)
	if err != nil {
		if s := h.grace.accept(id, hash, h.now(), h.policy); s != nil {
			if c := h.log(r.Context()).Check(zap.WarnLevel, "session store unavailable; session accepted within grace"); c != nil {
				c.Write(zap.Error(err), zap.String("session_id", s.ID))
			}
			return auth{sess: s, degraded: true}, true
		}
		return auth{err: err}, false
	}
	switch v.Status {
	case session.Valid:
		if v.Touched {
			h.metrics.touch()
		}
		if v.TouchRefused {
			h.touchRefused(id)
		}
		h.grace.seen(v.Session, hash, now)
		h.cache.put(v.Session, hash, now)
		// A token is made to be used from elsewhere: its moves raise no
		// flag, end nothing and are no sighting of the user.
		if v.PrevIP != "" && !v.Session.IsToken() {
			return h.ipChanged(r, v.Session), true
		}
		return auth{sess: v.Session}, true
	case session.Expired:
		h.forget(id)
		return auth{outcome: outcomeExpired, clearCookie: true, ended: session.EndExpired}, true
	case session.Ended:
		h.forget(id)
		if v.Session.EndReason == session.EndExpired {
			return auth{outcome: outcomeExpired, clearCookie: true, ended: session.EndExpired}, true
		}
		return auth{outcome: outcomeRevoked, clearCookie: true, ended: v.Session.EndReason}, true
	case session.Unlisted:
		// Fail closed: signing out everywhere, an admin's revocation and
		// max_sessions could not have reached this session.
		h.forget(id)
		h.metrics.unlistedSession()
		if c := h.log(r.Context()).Check(zap.ErrorLevel, "session refused: its user's index no longer lists it (Redis evicted the key: set maxmemory-policy noeviction)"); c != nil {
			c.Write(zap.String("session_id", id), zap.String("user_id", v.Session.UserID))
		}
		return auth{outcome: outcomeRevoked, clearCookie: true, ended: session.EndRevoked}, true
	}
	return auth{}, false
}

// touchRefused counts a touch the store refused for lack of memory; the
// session is served without it (its idle time runs from the last write).
// One warning a minute at most: when Redis is full, every due touch fails.
func (h *Handler) touchRefused(id string) {
	h.metrics.touchRefused()
	if n, ok := h.fullStore.due(); ok {
		if c := h.logger.Check(zap.WarnLevel, "session store full: activity not written, sessions served without it"); c != nil {
			c.Write(zap.String("session_id", id), zap.Int64("refused_since_last_warning", n))
		}
	}
}

// sometimes lets a repeated log line through once per period and counts
// the times in between.
type sometimes struct {
	every time.Duration
	n     atomic.Int64 // occurrences since the last line
	last  atomic.Int64 // when that was, Unix ns
}

// due counts one occurrence and tells whether to log it, with how many
// there were since the last line (this one included).
func (s *sometimes) due() (int64, bool) {
	if s == nil {
		return 0, false
	}
	n := s.n.Add(1)
	now, last := time.Now().UnixNano(), s.last.Load()
	if (last != 0 && now-last < int64(s.every)) || !s.last.CompareAndSwap(last, now) {
		return 0, false
	}
	s.n.Add(-n)
	return n, true
}

// guessed counts a cookie that matches no session (unknown or malformed;
// not an expired or ended one) towards guess_rate, and logs the failed
// attempt (never the token).
func (h *Handler) guessed(r *http.Request) auth {
	if c := h.log(r.Context()).Check(zap.InfoLevel, "session token rejected: matches no session"); c != nil {
		c.Write(zap.String("ip_address", clientIP(r)), zap.String("path", sanitise(r.URL.Path, 256)))
	}
	err := h.rateLimit(r, limitGuess, clientKey(clientIP(r)), "", h.GuessRate)
	var rl errRateLimited
	if errors.As(err, &rl) {
		return auth{err: err}
	}
	if err != nil {
		h.log(r.Context()).Debug("counting an unknown session token", zap.Error(err))
	}
	return auth{outcome: outcomeInvalid, clearCookie: true}
}

// ipChanged handles the first request of a session from a new IP: the
// ip_change policy, the new location, the history and events (one more
// store call, only when the IP changed), then the country_change policy.
func (h *Handler) ipChanged(r *http.Request, s *session.Session) auth {
	ctx := r.Context()
	now := h.now()
	if h.IPChange == "deny" {
		return h.endByPolicy(ctx, r, s, session.EndIPChange, now)
	}
	loc := h.place(ctx, s.IP)
	sg := session.Sighting{IP: s.IP, Country: loc.Country, City: loc.City, Lat: loc.Lat, Lon: loc.Lon, HasCoord: loc.HasCoord}
	prevCountry, prevRisk := s.Country, s.Risk
	s2, err := h.store.Sight(ctx, s.ID, sg, now, h.policy)
	if errors.Is(err, session.ErrNotFound) {
		return auth{outcome: outcomeRevoked, clearCookie: true, ended: session.EndRevoked}
	}
	if err != nil {
		return auth{err: err}
	}
	h.logEvent(eventOf(s2, session.EventIPChange, now, ""))
	h.notifier.notify(r, noticeIPChange, s2, now)
	if sg.Country != "" && prevCountry != "" && sg.Country != prevCountry {
		h.logEvent(eventOf(s2, session.EventCountryChange, now, ""))
	}
	if s2.Risk != prevRisk && session.HasFlag(s2.Risk, session.FlagImpossibleTravel) {
		h.logEvent(eventOf(s2, session.EventRisk, now, session.FlagImpossibleTravel))
		h.notifier.notify(r, noticeImpossibleTravel, s2, now)
	}
	if h.CountryChange == "deny" && countryChanged(s2) {
		return h.endByPolicy(ctx, r, s2, session.EndCountryChange, now)
	}
	return auth{sess: s2}
}

// endByPolicy ends a session that an ip_change or country_change policy
// refuses; the request goes on as unauthenticated.
func (h *Handler) endByPolicy(ctx context.Context, r *http.Request, s *session.Session, reason string, now time.Time) auth {
	ended, err := h.store.End(ctx, s.ID, now, reason, session.ActorPolicy, h.policy)
	switch {
	case err == nil:
		h.sessionEnded(ended, ending{reason: reason, actor: session.ActorPolicy, at: now, ctx: ctx})
	case !errors.Is(err, session.ErrNotFound):
		return auth{err: err}
	}
	return auth{outcome: outcomeRevoked, clearCookie: true, ended: reason}
}

// authenticateVouched is authenticate, then vouched for a session
// signed in at a provider: for the requests that go on with the session
// (the upstream's, /me, the sessions page), not for a sign-out.
func (h *Handler) authenticateVouched(r *http.Request) auth {
	a := h.authenticate(r)
	if a.sess != nil && a.sess.Provider != "" {
		if a.sess.IsToken() && a.secret == "" {
			// A token's own secret opens what it keeps sealed.
			if cred, ok := h.tokens.bearer(r); ok {
				a.secret = credentialSecret(cred)
			}
		}
		a = h.oidc.vouched(r, a)
	}
	return a
}

// requireSession authenticates a self-service request. Without a session
// it has already answered, as the gateway answers any unauthenticated
// request (with a way back to the page for a browser): it returns a nil
// session and what ServeHTTP should return.
func (h *Handler) requireSession(w http.ResponseWriter, r *http.Request) (*session.Session, error) {
	a := h.authenticateVouched(r)
	if a.err != nil {
		return nil, h.refuse(w, r, a.err)
	}
	if a.sess == nil {
		return nil, h.noSession(w, r, a)
	}
	h.metrics.request(outcomeAuthenticated)
	h.setIdentity(r, a.sess)
	return a.sess, nil
}
