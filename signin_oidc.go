package sessionauth

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/sessionauth/caddy-sessionauth/oidc"
	"github.com/sessionauth/caddy-sessionauth/session"
)

// Signing in at an OpenID provider: the routes ({endpoints}/sign-in/<name>,
// /callback/<name>, /backchannel-logout/<name>), the pages, the store's
// records and the minting of sessions. The protocol itself (discovery,
// the authorization request, the exchange, the token checks, claims and
// allow rules, sealing) is package oidc's.

// OIDC sign-ins: the cookie that binds a sign-in to the browser that
// started it, and the longest callback query read.
const (
	pendingTTL         = oidc.PendingTTL
	oidcCookieSuffix   = "_oidc"
	maxCallbackQueryLn = 8 << 10
)

// oidcProvider is a configured OIDC provider at run time: the relying
// party and what the gateway keeps about it.
type oidcProvider struct {
	cfg    *OIDCProvider
	rp     *oidc.Provider
	client *http.Client
	// downUntil (Unix ns): no refresh is asked before, since the provider
	// did not answer (recheck.go).
	downUntil atomic.Int64

	refreshes singleflight.Group // one refresh per session at a time in this process
}

// oidcHost is what the OIDC part asks of the handler: the flows it
// shares with the other ways in (pages, refusals, minting, the ends of
// sessions, cookies). *Handler is one.
type oidcHost interface {
	heldSession(r *http.Request) (*session.Session, error)
	refuse(w http.ResponseWriter, r *http.Request, err error) error
	rateLimit(r *http.Request, kind, who, userID string, rate *Rate) error
	finishSignIn(w http.ResponseWriter, r *http.Request, who signedIn, su stepUpOf, land func() error) error
	mintFailed(w http.ResponseWriter, r *http.Request, err error) error
	storeUnavailable(w http.ResponseWriter, r *http.Request, err error) error
	cookieSecret(r *http.Request, id string) string
	forget(ids ...string)
	refreshed(id string)
	sessionEnded(s *session.Session, e ending)
}

// oidcSignIn is the sign-in at OpenID providers, and what follows from
// it: the recheck of its sessions and tokens (recheck.go,
// tokenrecheck.go), back-channel logout (backchannel.go), logout at the
// provider (providerlogout.go), the sign-ins under way (pendingcookie.go).
// The handler always has one once provisioned; without providers it
// finds none by name.
type oidcSignIn struct {
	cookies *cookieRules
	// forward: where a browser may go after signing in (forwardauth.go);
	// nil without forward_auth.
	forward   *ForwardAuth
	providers map[string]*oidcProvider
	stateRing *stateKeyring // the keys of OIDC sign-ins under way (pendingcookie.go)
	endpoints string
	host      oidcHost

	// Set by wireOIDC, once the handler has its store.
	store                session.Store
	policy               session.Policy
	logger               *zap.Logger
	now                  func() time.Time
	cache                *sessionCache
	grace                *graceCache
	blocked              *blocklist
	metrics              *metrics
	loginRate, guessRate *Rate
	// ownerTTL: a user id's source is remembered for as long as anything
	// it signed in (a session, an API token) and its record can last.
	ownerTTL time.Duration
	// localAccount: a local account (sign_in accounts) has this user id.
	localAccount func(userID string) bool
	// pages: the sign-in page (signin_page.go), where a refused callback
	// is told and counted.
	pages interface {
		loginFailed(r *http.Request, userID, reason string)
		render(w http.ResponseWriter, r *http.Request, status int, page signInPage) error
	}
}

// provider is the provider named name, nil when there is none.
func (o *oidcSignIn) provider(name string) *oidcProvider {
	if o == nil {
		return nil
	}
	return o.providers[name]
}

// all is every provider, by name.
func (o *oidcSignIn) all() map[string]*oidcProvider {
	if o == nil {
		return nil
	}
	return o.providers
}

func (p *OIDCProvider) label() string {
	if p.Label != "" {
		return p.Label
	}
	return p.Name
}

// newOIDCSignIn makes the OIDC part of sign_in's providers; wireOIDC
// completes it once the handler has its store.
func newOIDCSignIn(si *SignIn) *oidcSignIn {
	o := &oidcSignIn{providers: make(map[string]*oidcProvider, len(si.OIDC)), stateRing: &stateKeyring{}}
	for _, c := range si.OIDC {
		// User ids that are email addresses compare in lower case.
		for _, l := range [][]string{c.AllowUsers, c.LinkUsers} {
			for i, id := range l {
				l[i] = userIDOf(id)
			}
		}
		client := &http.Client{Timeout: oidc.Timeout, Transport: tracedTransport{http.DefaultTransport}}
		rp := oidc.New(oidc.Config{
			Name: c.Name, Issuer: c.Issuer, ClientID: c.ClientID, ClientSecret: c.ClientSecret, Scopes: c.Scopes,
			UserClaim: c.UserClaim, RolesClaim: c.RolesClaim,
			AllowUsers: c.AllowUsers, AllowDomains: c.AllowDomains, AllowRoles: c.AllowRoles,
			Offline: c.Recheck > 0 || c.PassAccessToken,
		}, client, traceSpan)
		o.providers[c.Name] = &oidcProvider{cfg: c, rp: rp, client: client}
	}
	return o
}

// wireOIDC gives the handler's OIDC part (an empty one without sign_in)
// what it needs of the handler, once the handler has its store.
func wireOIDC(h *Handler) {
	o := h.oidc
	if o == nil {
		o = &oidcSignIn{stateRing: &stateKeyring{}}
		h.oidc = o
	}
	o.endpoints, o.host, o.forward, o.cookies = h.Endpoints, h, h.ForwardAuth, h.cookies
	o.store, o.policy, o.logger, o.now = h.store, h.policy, h.logger, h.now
	o.cache, o.grace, o.blocked, o.metrics = h.cache, h.grace, h.blocked, h.metrics
	o.loginRate, o.guessRate = h.LoginRate, h.GuessRate
	o.ownerTTL = h.policy.Lifetime
	if h.APITokens != nil && time.Duration(h.APITokens.MaxLifetime) > o.ownerTTL {
		o.ownerTTL = time.Duration(h.APITokens.MaxLifetime)
	}
	o.ownerTTL += h.policy.Retention
	o.localAccount, o.pages = h.signIn.hasAccount, h.signIn
}

// traceSpan is childSpan for package oidc.
func traceSpan(ctx context.Context, name string) (context.Context, func(error)) {
	ctx, sp := childSpan(ctx, name)
	return ctx, func(err error) { endSpan(sp, err) }
}

// userIDOf is the user id as it is stored, compared and forwarded: an
// email address in lower case (SPEC 11 "One user id, one person").
func userIDOf(id string) string { return oidc.UserID(id) }

// providerStartURL is the URL of a provider's button.
func providerStartURL(endpoints, name, next string) string {
	u := endpoints + "/sign-in/" + name
	if next != "/" {
		u += "?next=" + url.QueryEscape(next)
	}
	return u
}

// providerStepUpURL is the URL that confirms an OIDC session at its
// provider.
func providerStepUpURL(endpoints, name, next string) string {
	return endpoints + "/sign-in/" + name + "?step_up=1&next=" + url.QueryEscape(next)
}

func randomString() string { return oidc.RandomString() }

// redirectURL is the callback of provider p for this site.
func (o *oidcSignIn) redirectURL(r *http.Request, p *oidcProvider) string {
	return requestScheme(r) + "://" + r.Host + o.endpoints + "/callback/" + p.cfg.Name
}

// serveStart sends the browser to the provider: state, nonce and the
// PKCE verifier sealed in a short-lived cookie.
func (o *oidcSignIn) serveStart(w http.ResponseWriter, r *http.Request, name string) error {
	p := o.provider(name)
	if p == nil {
		return answer(w, r, problemUnknownProvider)
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return methodNotAllowed(w, "GET, HEAD")
	}
	next := o.forward.signInNext(r.URL.Query().Get("next"))
	var stepUp *session.Session
	if r.URL.Query().Get("step_up") == "1" {
		s, err := o.host.heldSession(r)
		if err != nil {
			return o.host.refuse(w, r, err)
		}
		if s != nil && s.Provider == p.cfg.Name && s.AuthMethod == session.MethodOIDC(p.cfg.Name) {
			stepUp = s
		}
	}
	return o.start(w, r, p, next, stepUp)
}

// start redirects to the provider. A step-up (of the session stepUp,
// signed in at this provider) asks the provider to sign the user in again
// however recently it did (prompt=login, max_age=0).
//
// A start writes nothing to the store (the pending sign-in is in the
// browser's cookie) and counts towards nothing: a sign-in at a provider
// spends one attempt of login_rate at its callback, as a password does.
func (o *oidcSignIn) start(w http.ResponseWriter, r *http.Request, p *oidcProvider, next string, stepUp *session.Session) error {
	if err := p.rp.Discover(r.Context()); err != nil {
		o.logger.Error("OIDC provider unavailable", zap.String("provider", p.cfg.Name), zap.Error(err))
		return o.signInProblem(w, r, http.StatusOK, fmt.Sprintf("Signing in with %s is unavailable at the moment: the provider does not answer. Try again in a minute.", p.cfg.label()))
	}
	ctx := r.Context()
	keys, err := o.stateKeys(ctx, false)
	if err != nil {
		return o.host.refuse(w, r, err)
	}
	if len(next) > maxPendingNext {
		next = "/"
	}
	state := oidc.NewState(keys[0].Key, o.now())
	ps := oidc.Pending{Provider: p.cfg.Name, State: state, Nonce: oidc.RandomString(), Verifier: oidc.NewVerifier(), Next: next}
	if stepUp != nil {
		ps.StepUp, ps.Since = stepUp.ID, o.now().UnixMilli()
	}
	sealed, err := oidc.SealPending(keys[0].Key, ps)
	if err != nil {
		return o.host.refuse(w, r, err)
	}
	to, err := p.rp.AuthURL(ctx, o.redirectURL(r, p), state, ps.Nonce, ps.Verifier, stepUp != nil)
	if err != nil {
		return o.host.refuse(w, r, err)
	}
	http.SetCookie(w, o.bindingCookie(r, sealed, pendingTTL))
	w.Header().Set("Location", to)
	w.WriteHeader(http.StatusSeeOther)
	return nil
}

// serveCallback completes an OIDC sign-in: the state one of ours, not
// used, and the one the browser's binding cookie was sealed for; the
// callback's iss (RFC 9207); the code exchanged with the PKCE verifier
// (the state then spent); the ID token checked (package oidc); the
// claims mapped and allowed, the user id not another person's; then the
// session minted. Every refusal is a page in words, a log line and a
// login_failed event.
func (o *oidcSignIn) serveCallback(w http.ResponseWriter, r *http.Request, name string) error {
	p := o.provider(name)
	if p == nil {
		return answer(w, r, problemUnknownProvider)
	}
	if r.Method != http.MethodGet {
		return methodNotAllowed(w, "GET")
	}
	label := p.cfg.label()
	if len(r.URL.RawQuery) > maxCallbackQueryLn {
		return o.callbackRefused(w, r, p, "callback query too long", fmt.Sprintf("The sign-in with %s could not be completed: the provider's answer was not understood.", label))
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return o.callbackRefused(w, r, p, "callback query unreadable", fmt.Sprintf("The sign-in with %s could not be completed: the provider's answer was not understood.", label))
	}
	state := q.Get("state")
	ps, why, err := o.pendingOf(r.Context(), r, name, state)
	switch {
	case err != nil:
		return o.host.refuse(w, r, err)
	case why == whyUnknownState:
		return o.callbackRefused(w, r, p, "unknown, used or expired state",
			fmt.Sprintf("The sign-in with %s has expired or was already used. Please sign in again.", label))
	case why != "":
		return o.callbackRefused(w, r, p, why,
			fmt.Sprintf("The sign-in with %s was started in another browser or window. Please sign in again here.", label))
	}
	// The state was this browser's: a sign-in attempt, which counts
	// towards login_rate before the provider is asked about the code.
	if err := o.host.rateLimit(r, limitLogin, clientKey(clientIP(r)), "", o.loginRate); err != nil {
		return o.host.refuse(w, r, err)
	}
	http.SetCookie(w, o.bindingCookie(r, "", -1))
	if iss, ok := q["iss"]; ok && (len(iss) != 1 || iss[0] != p.cfg.Issuer) {
		// RFC 9207: an answer another provider gave (mix-up), whatever it says.
		return o.failed(w, r, p, "", http.StatusBadRequest, "callback iss is not the provider's issuer",
			fmt.Sprintf("The sign-in with %s could not be completed: the answer came from another provider. Please sign in again.", label))
	}
	if e := q.Get("error"); e != "" {
		text := fmt.Sprintf("The sign-in with %s failed: the provider refused it.", label)
		if e == "access_denied" {
			text = fmt.Sprintf("The sign-in with %s was cancelled.", label)
		}
		return o.failed(w, r, p, "", http.StatusUnauthorized, "provider returned "+sanitise(e, 64), text)
	}
	if err := p.rp.Discover(r.Context()); err != nil {
		return o.failed(w, r, p, "", http.StatusOK, "provider unavailable: "+err.Error(),
			fmt.Sprintf("Signing in with %s is unavailable at the moment: the provider does not answer. Try again in a minute.", label))
	}
	if _, ok := q["iss"]; !ok && p.rp.IssParam() {
		return o.failed(w, r, p, "", http.StatusBadRequest, "callback without iss, which the provider's discovery promises (RFC 9207)",
			fmt.Sprintf("The sign-in with %s could not be completed: the provider's answer was not understood. Please sign in again.", label))
	}
	ex, err := p.rp.Exchange(r.Context(), o.redirectURL(r, p), q.Get("code"), ps.Verifier)
	if err != nil {
		return o.failed(w, r, p, "", http.StatusBadRequest, "code exchange failed: "+err.Error(),
			fmt.Sprintf("The sign-in with %s could not be completed: the provider did not accept it. Please sign in again.", label))
	}
	// The provider took the code: the state is spent, whatever follows.
	if err := o.store.Link(r.Context(), stateUsedPrefix+state, "1", pendingTTL+oidc.IatSkew, o.now()); err != nil {
		return o.host.mintFailed(w, r, err)
	}
	got, err := p.rp.Verify(r.Context(), ex, ps.Nonce, o.now())
	if err != nil {
		text := fmt.Sprintf("The sign-in with %s could not be completed: its answer failed the checks. Please sign in again.", label)
		var f *oidc.Failure
		if errors.As(err, &f) {
			switch f.Kind {
			case oidc.FailNonce:
				text = fmt.Sprintf("The sign-in with %s could not be completed: its answer belongs to another sign-in. Please sign in again.", label)
			case oidc.FailClaims:
				text = fmt.Sprintf("The sign-in with %s could not be completed.", label)
			case oidc.FailUserInfo:
				text = fmt.Sprintf("The sign-in with %s could not be completed: the provider did not describe the account. Please sign in again.", label)
			}
		}
		return o.failed(w, r, p, "", http.StatusBadRequest, err.Error(), text)
	}
	claims := got.Claims
	id, reason := p.rp.Identity(claims)
	who := signedIn{userID: id.UserID, email: id.Email, name: id.Name, roles: id.Roles}
	if reason == "" && checkIdentity(who.userID, who.email, who.name, who.roles) != nil {
		reason = "the provider's account details are not usable here"
	}
	if reason != "" {
		return o.failed(w, r, p, who.userID, http.StatusForbidden, reason,
			fmt.Sprintf("The sign-in with %s could not be completed: %s.", label, reason))
	}
	if !p.rp.Allowed(id, claims) {
		return o.failed(w, r, p, who.userID, http.StatusForbidden, "not allowed", "This account is not allowed here.")
	}
	other, err := o.claimUserID(r.Context(), p, who.userID)
	switch {
	case err != nil:
		return o.host.mintFailed(w, r, err)
	case other != "":
		return o.failed(w, r, p, who.userID, http.StatusForbidden, "user id belongs to "+other,
			fmt.Sprintf("The sign-in with %s could not be completed: this site already has a different account named %s (%s). The site's operator can link the two if they are the same person.", label, who.userID, other))
	}
	if ps.StepUp != "" && !oidc.SignedInAgain(claims, time.UnixMilli(ps.Since)) {
		// The provider was asked to sign the user in again (max_age=0):
		// OIDC Core then requires auth_time, and one from before the
		// step-up says it did not.
		return o.failed(w, r, p, who.userID, http.StatusUnauthorized, "step-up: the ID token has no auth_time, or one older than the step-up",
			fmt.Sprintf("Confirming it's you with %s did not work: %s did not ask you to sign in again. Please try again.", label, label))
	}
	who.method = session.MethodOIDC(p.cfg.Name)
	sid := sanitise(oidc.ClaimString(claims["sid"]), 256)
	who.provider, who.subject, who.sid = p.cfg.Name, got.Subject, sid
	now := o.now()
	if (p.cfg.Recheck > 0 || p.cfg.PassAccessToken) && ex.Refresh == "" {
		// Without a refresh token the session could never be checked
		// again (recheck) nor its access token renewed: a sign-in that
		// left out offline_access (or a provider that gives none) would
		// get a session the provider can no longer end.
		return o.failed(w, r, p, who.userID, http.StatusBadRequest, "no refresh token (recheck or pass_access_token needs offline_access)",
			fmt.Sprintf("The sign-in with %s could not be completed: %s did not grant the lasting access this site needs to check your account later. Please sign in again, and allow it if asked.", label, label))
	}
	// When the user really signed in at the provider: a provider with
	// single sign-on can answer without asking, and a session_require
	// max_age must then see that sign-in's age, not this callback's.
	var authAt time.Time
	if t, ok := oidc.AuthTime(claims); ok && t.Before(now) {
		authAt = t
	}
	if err := o.linkSession(r.Context(), p.cfg.Name, who.userID, got.Subject, sid, o.policy.Lifetime); err != nil {
		return o.host.mintFailed(w, r, err)
	}
	who.prepare = func(s *session.Session, secret string) error {
		s.Provider, s.Subject, s.ProviderSID, s.CheckedAt = p.cfg.Name, got.Subject, sid, now
		if !authAt.IsZero() && authAt.Before(s.CreatedAt) {
			s.AuthenticatedAt = authAt
		}
		if p.cfg.Recheck > 0 || p.cfg.PassAccessToken || p.cfg.LogoutAtProvider {
			t := oidc.Tokens{Refresh: ex.Refresh, Access: ex.Access, Expiry: ex.Expiry}
			if p.cfg.LogoutAtProvider {
				t.ID = ex.RawIDToken
			}
			sealed, err := oidc.SealTokens(secret, s.ID, t)
			if err != nil {
				return err
			}
			s.SealedTokens = sealed
		}
		return nil
	}
	next := o.forward.signInNext(ps.Next)
	return o.host.finishSignIn(w, r, who, stepUpOf{on: ps.StepUp != "", id: ps.StepUp}, func() error { return o.landAfterProvider(w, next) })
}

// landAfterProvider sends the browser on to next after a sign-in at a
// provider. The callback arrives from the provider's site, and a browser
// withholds a SameSite=Strict cookie from every request of a navigation
// that another site started, redirects included: with same_site strict a
// redirect would land on next without the new session, back at the
// sign-in page. A page of this site's that moves on by itself (a meta
// refresh, no script) starts a navigation of this site's, which carries it.
func (o *oidcSignIn) landAfterProvider(w http.ResponseWriter, next string) error {
	if o.cookies.sameSite() != http.SameSiteStrictMode {
		w.Header().Set("Location", next)
		w.WriteHeader(http.StatusSeeOther)
		return nil
	}
	htmlHeaders(w)
	w.WriteHeader(http.StatusOK)
	return renderPage(w, pageSignedIn, next)
}

func sha256Of(s string) []byte {
	sum := sha256.Sum256([]byte(s))
	return sum[:]
}

// callbackRefused answers a callback that no sign-in of this browser's
// started: unreadable, an unknown, used or expired state, or a state
// bound to another browser's cookie. Any page can make a browser fetch
// the callback (<img src=".../callback/corp?state=x">), so these do not
// count towards login_rate: they would lock the visitor's address out of
// signing in. They count towards guess_rate instead, whose block refuses
// only what matches nothing (a session cookie or token the store does
// not know, another made-up state; never a valid session nor a sign-in),
// so that a flood of made-up states stays bounded: once over it, the
// answer is 429 and no login_failed event is recorded.
// A real callback (its state made here, bound to this browser's
// cookie) is never refused by this count: it is made after the
// state is checked.
func (o *oidcSignIn) callbackRefused(w http.ResponseWriter, r *http.Request, p *oidcProvider, why, text string) error {
	if err := o.host.rateLimit(r, limitGuess, clientKey(clientIP(r)), "", o.guessRate); err != nil {
		return o.host.refuse(w, r, err)
	}
	return o.failed(w, r, p, "", http.StatusBadRequest, why, text)
}

// failed answers a refused or failed OIDC sign-in: a page in words,
// a log line and a login_failed event (reason not_allowed or idp_error).
func (o *oidcSignIn) failed(w http.ResponseWriter, r *http.Request, p *oidcProvider, userID string, status int, why, text string) error {
	if c := o.logger.Check(zap.WarnLevel, "OIDC sign-in refused"); c != nil {
		c.Write(zap.String("provider", p.cfg.Name), zap.String("reason", sanitise(why, 512)), zap.String("ip_address", clientIP(r)))
	}
	reason := "idp_error"
	if status == http.StatusForbidden {
		reason = "not_allowed"
	}
	o.pages.loginFailed(r, userID, reason)
	return o.signInProblem(w, r, status, text)
}

// signInProblem shows what went wrong with a way to start again.
func (o *oidcSignIn) signInProblem(w http.ResponseWriter, r *http.Request, status int, text string) error {
	if !wantsPage(r) {
		code := "sign_in_failed"
		if status == http.StatusForbidden {
			code = "not_allowed"
		}
		return writeJSON(w, status, errorBody{code})
	}
	return o.pages.render(w, r, status, signInPage{Next: "/", Error: text})
}

// Which source gave a user id (SPEC 11 "One user id, one person"), kept
// as a link so that every gateway sharing the store knows: "email" for
// providers whose user claim is the verified email (they share it), else
// "oidc:<name>", whose ids are that provider's alone.
func ownerLink(userID string) string { return "uid-owner:" + userID }

func (p *oidcProvider) idSource() string {
	if p.rp.EmailNamesUsers() {
		return "email"
	}
	return "oidc:" + p.cfg.Name
}

func (p *oidcProvider) linked(userID string) bool {
	return slices.Contains(p.cfg.LinkUsers, "*") || slices.Contains(p.cfg.LinkUsers, userID)
}

// claimUserID records that p signs in as userID, unless the id belongs
// to a local account or another source gave it, and the operator did not
// link it (link_users): then other names the owner ("a local account",
// "the provider <name>") and nothing is recorded.
func (o *oidcSignIn) claimUserID(ctx context.Context, p *oidcProvider, userID string) (other string, err error) {
	linked := p.linked(userID)
	if !linked && o.localAccount(userID) {
		return "a local account", nil
	}
	mine := p.idSource()
	now := o.now()
	owners, err := o.store.Linked(ctx, ownerLink(userID), now)
	if err != nil {
		return "", err
	}
	for _, ow := range owners {
		if ow != mine && !linked {
			if name, ok := strings.CutPrefix(ow, "oidc:"); ok {
				return "the provider " + name, nil
			}
			return "another provider", nil
		}
	}
	return "", o.store.Link(ctx, ownerLink(userID), mine, o.ownerTTL, now)
}

const whyUnknownState = "unknown, used or expired state"

// pendingOf reads the sign-in under way that the callback's state names
// from the browser's binding cookie: why says what is wrong, the
// unknown-state reason (made up, expired, already used) or another (the
// browser holds no cookie of this sign-in); err is the store's.
func (o *oidcSignIn) pendingOf(ctx context.Context, r *http.Request, name, state string) (ps oidc.Pending, why string, err error) {
	if state == "" || len(state) > 128 {
		return ps, whyUnknownState, nil
	}
	keys, err := o.stateKeys(ctx, false)
	if err != nil {
		return ps, "", err
	}
	made, ok := oidc.StateMadeAt(keys, state)
	if !ok {
		// Made by a key this gateway has not read yet (another gateway
		// made a new one a moment ago)?
		if keys, err = o.stateKeys(ctx, true); err != nil {
			return ps, "", err
		}
		made, ok = oidc.StateMadeAt(keys, state)
	}
	now := o.now()
	if !ok || now.Sub(made) > pendingTTL || made.After(now.Add(oidc.IatSkew)) {
		return ps, whyUnknownState, nil
	}
	used, err := o.store.Linked(ctx, stateUsedPrefix+state, now)
	if err != nil {
		return ps, "", err
	}
	if len(used) > 0 {
		return ps, whyUnknownState, nil
	}
	// Exactly one binding cookie: with more, one was tossed in, and none
	// is believed.
	var values []string
	cookieName := o.cookieName(r)
	for _, c := range r.Cookies() {
		if c.Name == cookieName {
			values = append(values, c.Value)
		}
	}
	if len(values) != 1 {
		return ps, "state not bound to this browser", nil
	}
	ps, err = oidc.OpenPending(keys, values[0], state)
	if err != nil || ps.Provider != name {
		return oidc.Pending{}, "state not bound to this browser", nil
	}
	return ps, "", nil
}
