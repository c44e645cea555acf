package sessionauth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"go.uber.org/zap"
	"golang.org/x/oauth2"
	"golang.org/x/sync/singleflight"

	"github.com/sessionauth/caddy-sessionauth/session"
)

// OIDC sign-ins: how long one may take from the button to the callback,
// the cookie that binds it to the browser that started it, and how long
// a call to the provider may take.
const (
	pendingTTL         = 10 * time.Minute
	oidcCookieSuffix   = "_oidc"
	providerTimeout    = 10 * time.Second
	defaultUserClaim   = "email"
	defaultRolesClaim  = "groups"
	maxCallbackQueryLn = 8 << 10
)

// provider is a configured OIDC provider at run time. Discovery happens
// on first use (Provision opens no connection) and is retried until it
// succeeds.
type provider struct {
	cfg    *OIDCProvider
	client *http.Client

	mu         sync.Mutex
	oidc       *oidc.Provider
	verifier   *oidc.IDTokenVerifier
	endSession string
	// issParam: the provider's discovery says its authorization
	// responses carry iss (RFC 9207), so a callback without one is refused.
	issParam bool
	// logoutVerifier checks back-channel logout tokens: the same keys,
	// iss and aud as ID tokens; their iat and optional exp are checked
	// against the handler's clock (readLogoutToken).
	logoutVerifier *oidc.IDTokenVerifier
	// downUntil (Unix ns): no refresh is asked before, since the provider
	// did not answer (recheck.go). Not under mu, which discovery holds
	// while it waits for the provider.
	downUntil atomic.Int64

	refreshes singleflight.Group // one refresh per session at a time in this process
}

func (p *OIDCProvider) label() string {
	if p.Label != "" {
		return p.Label
	}
	return p.Name
}

func (h *Handler) provisionProviders() error {
	h.providers = make(map[string]*provider, len(h.SignIn.OIDC))
	h.stateRing = &stateKeyring{}
	for _, c := range h.SignIn.OIDC {
		// User ids that are email addresses compare in lower case.
		for _, l := range [][]string{c.AllowUsers, c.LinkUsers} {
			for i, id := range l {
				l[i] = userIDOf(id)
			}
		}
		h.providers[c.Name] = &provider{cfg: c, client: &http.Client{Timeout: providerTimeout, Transport: tracedTransport{http.DefaultTransport}}}
	}
	return nil
}

// userIDOf is the user id as it is stored, compared and forwarded: an
// email address in lower case (SPEC 11 "One user id, one person"), so
// that Alice@Example.com is not a second person beside alice@example.com.
func userIDOf(id string) string {
	if strings.Contains(id, "@") {
		return strings.ToLower(id)
	}
	return id
}

// discover returns the provider's discovered endpoints and ID token
// verifier (the JWKS from discovery, fetched again on an unknown kid).
func (p *provider) discover(ctx context.Context) (*oidc.Provider, *oidc.IDTokenVerifier, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.oidc != nil {
		return p.oidc, p.verifier, nil
	}
	// The key set outlives this request: it keeps the client, not ctx.
	keep := oidc.ClientContext(context.WithoutCancel(ctx), p.client)
	ctx, cancel := context.WithTimeout(keep, providerTimeout)
	defer cancel()
	op, err := oidc.NewProvider(ctx, p.cfg.Issuer)
	if err != nil {
		return nil, nil, err
	}
	var extra struct {
		EndSession string `json:"end_session_endpoint"`
		IssParam   bool   `json:"authorization_response_iss_parameter_supported"`
	}
	_ = op.Claims(&extra)
	p.oidc, p.endSession, p.issParam = op, extra.EndSession, extra.IssParam
	p.verifier = op.Verifier(&oidc.Config{ClientID: p.cfg.ClientID})
	p.logoutVerifier = op.Verifier(&oidc.Config{ClientID: p.cfg.ClientID, SkipExpiryCheck: true})
	return p.oidc, p.verifier, nil
}

// oauth is the OAuth 2.0 client for this site's callback.
func (h *Handler) oauth(r *http.Request, p *provider, op *oidc.Provider) *oauth2.Config {
	scopes := p.cfg.Scopes
	if len(scopes) == 0 {
		scopes = []string{oidc.ScopeOpenID, "email", "profile"}
	}
	if (p.cfg.Recheck > 0 || p.cfg.PassAccessToken) && !slices.Contains(scopes, oidc.ScopeOfflineAccess) {
		scopes = append(slices.Clone(scopes), oidc.ScopeOfflineAccess)
	}
	return &oauth2.Config{
		ClientID: p.cfg.ClientID, ClientSecret: p.cfg.ClientSecret,
		Endpoint: op.Endpoint(), Scopes: scopes,
		RedirectURL: requestScheme(r) + "://" + r.Host + h.Endpoints + "/callback/" + p.cfg.Name,
	}
}

// providerStart is the URL of a provider's button.
func (h *Handler) providerStart(name, next string) string {
	u := h.Endpoints + "/sign-in/" + name
	if next != "/" {
		u += "?next=" + url.QueryEscape(next)
	}
	return u
}

// providerStepUp is the URL that confirms an OIDC session at its provider.
func (h *Handler) providerStepUp(name, next string) string {
	return h.Endpoints + "/sign-in/" + name + "?step_up=1&next=" + url.QueryEscape(next)
}

// pendingSignIn is what the binding cookie keeps, sealed, between the
// button and the callback (pendingcookie.go): used once, for pendingTTL.
type pendingSignIn struct {
	Provider string `json:"p"`
	State    string `json:"st"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"` // PKCE
	Next     string `json:"x"`
	// A step-up: the session it confirms (the browser held it at the
	// start) and when it started, in Unix milliseconds.
	StepUp string `json:"s,omitempty"`
	Since  int64  `json:"t,omitempty"`
}

// authTimeSkew is how much earlier than the start of a step-up the
// provider's auth_time may be, for the two clocks' difference.
const authTimeSkew = time.Minute

func randomString() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// serveProviderStart sends the browser to the provider: state, nonce
// and the PKCE verifier sealed in a short-lived cookie.
func (h *Handler) serveProviderStart(w http.ResponseWriter, r *http.Request, name string) error {
	p := h.providers[name]
	if p == nil {
		return answer(w, r, problemUnknownProvider)
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return methodNotAllowed(w, "GET, HEAD")
	}
	next := h.signInNext(r.URL.Query().Get("next"))
	var stepUp *session.Session
	if r.URL.Query().Get("step_up") == "1" {
		s, err := h.heldSession(r)
		if err != nil {
			return h.refuse(w, r, err)
		}
		if s != nil && s.Provider == p.cfg.Name && s.AuthMethod == session.MethodOIDC(p.cfg.Name) {
			stepUp = s
		}
	}
	return h.startOIDC(w, r, p, next, stepUp)
}

// startOIDC redirects to the provider. A step-up (of the session stepUp,
// signed in at this provider) asks the provider to sign the user in again
// however recently it did (prompt=login, max_age=0).
//
// A start writes nothing to the store (the pending sign-in is in the
// browser's cookie) and counts towards nothing: a sign-in at a provider
// spends one attempt of login_rate at its callback, as a password does.
func (h *Handler) startOIDC(w http.ResponseWriter, r *http.Request, p *provider, next string, stepUp *session.Session) error {
	op, _, err := p.discover(r.Context())
	if err != nil {
		h.logger.Error("OIDC provider unavailable", zap.String("provider", p.cfg.Name), zap.Error(err))
		return h.signInProblem(w, r, http.StatusOK, fmt.Sprintf("Signing in with %s is unavailable at the moment: the provider does not answer. Try again in a minute.", p.cfg.label()))
	}
	ctx := r.Context()
	keys, err := h.stateKeys(ctx, false)
	if err != nil {
		return h.refuse(w, r, err)
	}
	if len(next) > maxPendingNext {
		next = "/"
	}
	state := newState(keys[0].key, h.now())
	ps := pendingSignIn{Provider: p.cfg.Name, State: state, Nonce: randomString(), Verifier: oauth2.GenerateVerifier(), Next: next}
	if stepUp != nil {
		ps.StepUp, ps.Since = stepUp.ID, h.now().UnixMilli()
	}
	sealed, err := sealPending(keys[0].key, ps)
	if err != nil {
		return h.refuse(w, r, err)
	}
	http.SetCookie(w, h.bindingCookie(r, sealed, pendingTTL))
	opts := []oauth2.AuthCodeOption{oidc.Nonce(ps.Nonce), oauth2.S256ChallengeOption(ps.Verifier)}
	if stepUp != nil {
		opts = append(opts, oauth2.SetAuthURLParam("prompt", "login"), oauth2.SetAuthURLParam("max_age", "0"))
	}
	w.Header().Set("Location", h.oauth(r, p, op).AuthCodeURL(state, opts...))
	w.WriteHeader(http.StatusSeeOther)
	return nil
}

// serveCallback completes an OIDC sign-in: the state one of ours, not
// used, and the one the browser's binding cookie was sealed for; the
// callback's iss (RFC 9207); the code exchanged with the PKCE verifier
// (the state then spent); the ID token checked (signature, iss, aud,
// exp, nonce, iat, azp, at_hash); the claims mapped and allowed, the
// user id not another person's; then the session minted. Every refusal is a
// page in words, a log line and a login_failed event.
func (h *Handler) serveCallback(w http.ResponseWriter, r *http.Request, name string) error {
	p := h.providers[name]
	if p == nil {
		return answer(w, r, problemUnknownProvider)
	}
	if r.Method != http.MethodGet {
		return methodNotAllowed(w, "GET")
	}
	label := p.cfg.label()
	if len(r.URL.RawQuery) > maxCallbackQueryLn {
		return h.callbackRefused(w, r, p, "callback query too long", fmt.Sprintf("The sign-in with %s could not be completed: the provider's answer was not understood.", label))
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return h.callbackRefused(w, r, p, "callback query unreadable", fmt.Sprintf("The sign-in with %s could not be completed: the provider's answer was not understood.", label))
	}
	state := q.Get("state")
	pctx := r.Context()
	ps, why, err := h.pendingOf(pctx, r, name, state)
	switch {
	case err != nil:
		return h.refuse(w, r, err)
	case why == whyUnknownState:
		return h.callbackRefused(w, r, p, "unknown, used or expired state",
			fmt.Sprintf("The sign-in with %s has expired or was already used. Please sign in again.", label))
	case why != "":
		return h.callbackRefused(w, r, p, why,
			fmt.Sprintf("The sign-in with %s was started in another browser or window. Please sign in again here.", label))
	}
	// The state was this browser's: a sign-in attempt, which counts
	// towards login_rate before the provider is asked about the code.
	if err := h.rateLimit(r, limitLogin, clientKey(clientIP(r)), "", h.LoginRate); err != nil {
		return h.refuse(w, r, err)
	}
	http.SetCookie(w, h.bindingCookie(r, "", -1))
	if iss, ok := q["iss"]; ok && (len(iss) != 1 || iss[0] != p.cfg.Issuer) {
		// RFC 9207: an answer another provider gave (mix-up), whatever it says.
		return h.oidcFailed(w, r, p, "", http.StatusBadRequest, "callback iss is not the provider's issuer",
			fmt.Sprintf("The sign-in with %s could not be completed: the answer came from another provider. Please sign in again.", label))
	}
	if e := q.Get("error"); e != "" {
		text := fmt.Sprintf("The sign-in with %s failed: the provider refused it.", label)
		if e == "access_denied" {
			text = fmt.Sprintf("The sign-in with %s was cancelled.", label)
		}
		return h.oidcFailed(w, r, p, "", http.StatusUnauthorized, "provider returned "+sanitise(e, 64), text)
	}
	op, verifier, err := p.discover(r.Context())
	if err != nil {
		return h.oidcFailed(w, r, p, "", http.StatusOK, "provider unavailable: "+err.Error(),
			fmt.Sprintf("Signing in with %s is unavailable at the moment: the provider does not answer. Try again in a minute.", label))
	}
	if _, ok := q["iss"]; !ok && p.issParam {
		return h.oidcFailed(w, r, p, "", http.StatusBadRequest, "callback without iss, which the provider's discovery promises (RFC 9207)",
			fmt.Sprintf("The sign-in with %s could not be completed: the provider's answer was not understood. Please sign in again.", label))
	}
	ctx, cancel := context.WithTimeout(oidc.ClientContext(r.Context(), p.client), providerTimeout)
	defer cancel()
	tok, err := h.oauth(r, p, op).Exchange(ctx, q.Get("code"), oauth2.VerifierOption(ps.Verifier))
	if err != nil {
		return h.oidcFailed(w, r, p, "", http.StatusBadRequest, "code exchange failed: "+err.Error(),
			fmt.Sprintf("The sign-in with %s could not be completed: the provider did not accept it. Please sign in again.", label))
	}
	// The provider took the code: the state is spent, whatever follows.
	uctx := r.Context()
	err = h.store.Link(uctx, stateUsedPrefix+state, "1", pendingTTL+iatSkew, h.now())
	if err != nil {
		return h.mintFailed(w, r, err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := verifyToken(ctx, verifier, raw)
	if err != nil {
		return h.oidcFailed(w, r, p, "", http.StatusBadRequest, "ID token refused: "+err.Error(),
			fmt.Sprintf("The sign-in with %s could not be completed: its answer failed the checks. Please sign in again.", label))
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(ps.Nonce)) != 1 {
		return h.oidcFailed(w, r, p, "", http.StatusBadRequest, "ID token nonce does not match",
			fmt.Sprintf("The sign-in with %s could not be completed: its answer belongs to another sign-in. Please sign in again.", label))
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return h.oidcFailed(w, r, p, "", http.StatusBadRequest, "ID token claims unreadable", fmt.Sprintf("The sign-in with %s could not be completed.", label))
	}
	if why := p.tokenChecks(idt, claims, tok.AccessToken, h.now()); why != "" {
		return h.oidcFailed(w, r, p, "", http.StatusBadRequest, why,
			fmt.Sprintf("The sign-in with %s could not be completed: its answer failed the checks. Please sign in again.", label))
	}
	if p.needsUserInfo(claims) && op.UserInfoEndpoint() != "" {
		// OIDC Core 5.4: with an access token, a provider may leave the
		// scope's claims (email, profile) to the UserInfo endpoint.
		ui, err := op.UserInfo(ctx, oauth2.StaticTokenSource(tok))
		if err != nil || ui.Subject != idt.Subject {
			return h.oidcFailed(w, r, p, "", http.StatusBadRequest, fmt.Sprintf("userinfo refused: %v", err),
				fmt.Sprintf("The sign-in with %s could not be completed: the provider did not describe the account. Please sign in again.", label))
		}
		var more map[string]any
		if ui.Claims(&more) == nil {
			for k, v := range more {
				if _, ok := claims[k]; !ok {
					claims[k] = v // the signed ID token's claims win
				}
			}
		}
	}
	who, reason := p.identity(claims)
	if reason != "" {
		return h.oidcFailed(w, r, p, who.userID, http.StatusForbidden, reason,
			fmt.Sprintf("The sign-in with %s could not be completed: %s.", label, reason))
	}
	if !p.allowed(who, claims) {
		return h.oidcFailed(w, r, p, who.userID, http.StatusForbidden, "not allowed", "This account is not allowed here.")
	}
	oc := r.Context()
	other, err := h.claimUserID(oc, p, who.userID)
	switch {
	case err != nil:
		return h.mintFailed(w, r, err)
	case other != "":
		return h.oidcFailed(w, r, p, who.userID, http.StatusForbidden, "user id belongs to "+other,
			fmt.Sprintf("The sign-in with %s could not be completed: this site already has a different account named %s (%s). The site's operator can link the two if they are the same person.", label, who.userID, other))
	}
	if ps.StepUp != "" {
		// The provider was asked to sign the user in again (max_age=0):
		// OIDC Core then requires auth_time, and one from before the
		// step-up says it did not.
		if at, ok := claims["auth_time"].(float64); !ok || time.Unix(int64(at), 0).Before(time.UnixMilli(ps.Since).Add(-authTimeSkew)) {
			return h.oidcFailed(w, r, p, who.userID, http.StatusUnauthorized, "step-up: the ID token has no auth_time, or one older than the step-up",
				fmt.Sprintf("Confirming it's you with %s did not work: %s did not ask you to sign in again. Please try again.", label, label))
		}
	}
	who.method = session.MethodOIDC(p.cfg.Name)
	sid, _ := claims["sid"].(string)
	sid = sanitise(sid, 256)
	who.provider, who.subject, who.sid = p.cfg.Name, idt.Subject, sid
	now := h.now()
	if (p.cfg.Recheck > 0 || p.cfg.PassAccessToken) && tok.RefreshToken == "" {
		// Without a refresh token the session could never be checked
		// again (recheck) nor its access token renewed: a sign-in that
		// left out offline_access (or a provider that gives none) would
		// get a session the provider can no longer end.
		return h.oidcFailed(w, r, p, who.userID, http.StatusBadRequest, "no refresh token (recheck or pass_access_token needs offline_access)",
			fmt.Sprintf("The sign-in with %s could not be completed: %s did not grant the lasting access this site needs to check your account later. Please sign in again, and allow it if asked.", label, label))
	}
	// When the user really signed in at the provider: a provider with
	// single sign-on can answer without asking, and a session_require
	// max_age must then see that sign-in's age, not this callback's.
	var authAt time.Time
	if at, ok := claims["auth_time"].(float64); ok {
		if t := time.Unix(int64(at), 0); t.Before(now) {
			authAt = t
		}
	}
	lctx := r.Context()
	err = h.linkProviderSession(lctx, p.cfg.Name, who.userID, idt.Subject, sid, h.policy.Lifetime)
	if err != nil {
		return h.mintFailed(w, r, err)
	}
	who.prepare = func(s *session.Session, secret string) error {
		s.Provider, s.Subject, s.ProviderSID, s.CheckedAt = p.cfg.Name, idt.Subject, sid, now
		if !authAt.IsZero() && authAt.Before(s.CreatedAt) {
			s.AuthenticatedAt = authAt
		}
		if p.cfg.Recheck > 0 || p.cfg.PassAccessToken || p.cfg.LogoutAtProvider {
			t := tokens{Refresh: tok.RefreshToken, Access: tok.AccessToken, Expiry: tok.Expiry}
			if p.cfg.LogoutAtProvider {
				t.ID = raw
			}
			sealed, err := sealTokens(secret, s.ID, t)
			if err != nil {
				return err
			}
			s.SealedTokens = sealed
		}
		return nil
	}
	next := h.signInNext(ps.Next)
	return h.finishSignIn(w, r, who, stepUpOf{on: ps.StepUp != "", id: ps.StepUp}, func() error { return h.landAfterProvider(w, next) })
}

// landAfterProvider sends the browser on to next after a sign-in at a
// provider. The callback arrives from the provider's site, and a browser
// withholds a SameSite=Strict cookie from every request of a navigation
// that another site started, redirects included: with same_site strict a
// redirect would land on next without the new session, back at the
// sign-in page. A page of this site's that moves on by itself (a meta
// refresh, no script) starts a navigation of this site's, which carries it.
func (h *Handler) landAfterProvider(w http.ResponseWriter, next string) error {
	if h.sameSite() != http.SameSiteStrictMode {
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

// needsUserInfo: the ID token lacks the user claim, or the email that a
// user claim of email needs verified.
func (p *provider) needsUserInfo(claims map[string]any) bool {
	uc := p.cfg.UserClaim
	if uc == "" {
		uc = defaultUserClaim
	}
	_, hasUser := claims[uc]
	_, hasEmail := claims["email"]
	return !hasUser || !hasEmail
}

// identity maps the ID token's claims to the user: user_claim (email by
// default, which must then be verified), email, name, roles_claim.
func (p *provider) identity(claims map[string]any) (signedIn, string) {
	userClaim := p.cfg.UserClaim
	if userClaim == "" {
		userClaim = defaultUserClaim
	}
	var who signedIn
	who.userID = userIDOf(claimString(claims[userClaim]))
	who.email = claimString(claims["email"])
	verified := claimTrue(claims["email_verified"])
	if !verified {
		who.email = "" // an unverified address is not forwarded as the user's
	}
	who.name = claimString(claims["name"])
	if who.name == "" {
		who.name = claimString(claims["preferred_username"])
	}
	rolesClaim := p.cfg.RolesClaim
	if rolesClaim == "" {
		rolesClaim = defaultRolesClaim
	}
	who.roles = strings.Join(claimStrings(claims[rolesClaim]), ",")
	switch {
	case who.userID == "":
		return who, fmt.Sprintf("the provider did not name the user (no %s claim)", userClaim)
	case userClaim == "email" && !verified:
		return who, "the email address is not verified at the provider"
	}
	if err := checkIdentity(who.userID, who.email, who.name, who.roles); err != nil {
		return who, "the provider's account details are not usable here"
	}
	return who, ""
}

// allowed applies allow_*: with none given, everyone the provider signs
// in; otherwise the user must match one rule.
func (p *provider) allowed(who signedIn, claims map[string]any) bool {
	c := p.cfg
	if len(c.AllowUsers) == 0 && len(c.AllowDomains) == 0 && len(c.AllowRoles) == 0 {
		return true
	}
	if slices.Contains(c.AllowUsers, who.userID) {
		return true
	}
	if at := strings.LastIndexByte(who.email, '@'); at >= 0 && who.email != "" {
		domain := who.email[at+1:]
		for _, d := range c.AllowDomains {
			if strings.EqualFold(d, domain) {
				return true
			}
		}
	}
	for _, role := range claimStrings(claims[c.rolesClaim()]) {
		if slices.Contains(c.AllowRoles, role) {
			return true
		}
	}
	return false
}

func (p *OIDCProvider) rolesClaim() string {
	if p.RolesClaim != "" {
		return p.RolesClaim
	}
	return defaultRolesClaim
}

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
func (h *Handler) callbackRefused(w http.ResponseWriter, r *http.Request, p *provider, why, text string) error {
	if err := h.rateLimit(r, limitGuess, clientKey(clientIP(r)), "", h.GuessRate); err != nil {
		return h.refuse(w, r, err)
	}
	return h.oidcFailed(w, r, p, "", http.StatusBadRequest, why, text)
}

// oidcFailed answers a refused or failed OIDC sign-in: a page in words,
// a log line and a login_failed event (reason not_allowed or idp_error).
func (h *Handler) oidcFailed(w http.ResponseWriter, r *http.Request, p *provider, userID string, status int, why, text string) error {
	if c := h.logger.Check(zap.WarnLevel, "OIDC sign-in refused"); c != nil {
		c.Write(zap.String("provider", p.cfg.Name), zap.String("reason", sanitise(why, 512)), zap.String("ip_address", clientIP(r)))
	}
	reason := "idp_error"
	if status == http.StatusForbidden {
		reason = "not_allowed"
	}
	h.signIn.loginFailed(r, userID, reason)
	return h.signInProblem(w, r, status, text)
}

// signInProblem shows what went wrong with a way to start again.
func (h *Handler) signInProblem(w http.ResponseWriter, r *http.Request, status int, text string) error {
	if !wantsPage(r) {
		code := "sign_in_failed"
		if status == http.StatusForbidden {
			code = "not_allowed"
		}
		return writeJSON(w, status, errorBody{code})
	}
	return h.signIn.render(w, r, status, signInPage{Next: "/", Error: text})
}

// ID token checks beyond go-oidc's (signature, iss, aud, exp): iat
// recent (OIDC Core 3.1.3.7: the token was issued for this exchange, not
// replayed from long ago, nor dated ahead), azp equal to the client id
// when there are several audiences or an azp at all, and at_hash when
// the provider gave one (OIDC Core 3.2.2.9: the access token is the one
// issued with this ID token).
func (p *provider) tokenChecks(idt *oidc.IDToken, claims map[string]any, accessToken string, now time.Time) string {
	switch {
	case idt.IssuedAt.IsZero():
		return "ID token without iat"
	case idt.IssuedAt.After(now.Add(iatSkew)):
		return "ID token iat in the future"
	case now.Sub(idt.IssuedAt) > pendingTTL+iatSkew:
		return "ID token iat too old"
	}
	azp, hasAzp := claims["azp"]
	if (len(idt.Audience) > 1 || hasAzp) && claimString(azp) != p.cfg.ClientID {
		return "ID token azp is not this client (several audiences)"
	}
	if idt.AccessTokenHash != "" {
		if err := idt.VerifyAccessToken(accessToken); err != nil {
			return "ID token at_hash does not match the access token"
		}
	}
	return ""
}

// iatSkew is how far the provider's clock may be from the gateway's.
const iatSkew = 5 * time.Minute

// Which source gave a user id (SPEC 11 "One user id, one person"), kept
// as a link so that every gateway sharing the store knows: "email" for
// providers whose user claim is the verified email (they share it), else
// "oidc:<name>", whose ids are that provider's alone.
func ownerLink(userID string) string { return "uid-owner:" + userID }

func (p *provider) idSource() string {
	if p.cfg.UserClaim == "" || p.cfg.UserClaim == defaultUserClaim {
		return "email"
	}
	return "oidc:" + p.cfg.Name
}

func (p *provider) linked(userID string) bool {
	return slices.Contains(p.cfg.LinkUsers, "*") || slices.Contains(p.cfg.LinkUsers, userID)
}

// claimUserID records that p signs in as userID, unless the id belongs
// to a local account or another source gave it, and the operator did not
// link it (link_users): then other names the owner ("a local account",
// "the provider <name>") and nothing is recorded.
func (h *Handler) claimUserID(ctx context.Context, p *provider, userID string) (other string, err error) {
	linked := p.linked(userID)
	if !linked && h.signIn.hasAccount(userID) {
		return "a local account", nil
	}
	mine := p.idSource()
	now := h.now()
	owners, err := h.store.Linked(ctx, ownerLink(userID), now)
	if err != nil {
		return "", err
	}
	for _, o := range owners {
		if o != mine && !linked {
			if name, ok := strings.CutPrefix(o, "oidc:"); ok {
				return "the provider " + name, nil
			}
			return "another provider", nil
		}
	}
	return "", h.store.Link(ctx, ownerLink(userID), mine, h.ownerTTL(), now)
}

// ownerTTL: a user id's source is remembered for as long as anything it
// signed in (a session, an API token) and its record can last.
func (h *Handler) ownerTTL() time.Duration {
	d := h.policy.Lifetime
	if h.APITokens != nil && time.Duration(h.APITokens.MaxLifetime) > d {
		d = time.Duration(h.APITokens.MaxLifetime)
	}
	return d + h.policy.Retention
}

const whyUnknownState = "unknown, used or expired state"

// pendingOf reads the sign-in under way that the callback's state names
// from the browser's binding cookie: why says what is wrong, the
// unknown-state reason (made up, expired, already used) or another (the
// browser holds no cookie of this sign-in); err is the store's.
func (h *Handler) pendingOf(ctx context.Context, r *http.Request, name, state string) (ps pendingSignIn, why string, err error) {
	if state == "" || len(state) > 128 {
		return ps, whyUnknownState, nil
	}
	keys, err := h.stateKeys(ctx, false)
	if err != nil {
		return ps, "", err
	}
	made, ok := stateMadeAt(keys, state)
	if !ok {
		// Made by a key this gateway has not read yet (another gateway
		// made a new one a moment ago)?
		if keys, err = h.stateKeys(ctx, true); err != nil {
			return ps, "", err
		}
		made, ok = stateMadeAt(keys, state)
	}
	now := h.now()
	if !ok || now.Sub(made) > pendingTTL || made.After(now.Add(iatSkew)) {
		return ps, whyUnknownState, nil
	}
	used, err := h.store.Linked(ctx, stateUsedPrefix+state, now)
	if err != nil {
		return ps, "", err
	}
	if len(used) > 0 {
		return ps, whyUnknownState, nil
	}
	// Exactly one binding cookie: with more, one was tossed in, and none
	// is believed.
	var values []string
	cookieName := h.oidcCookieName(r)
	for _, c := range r.Cookies() {
		if c.Name == cookieName {
			values = append(values, c.Value)
		}
	}
	if len(values) != 1 {
		return ps, "state not bound to this browser", nil
	}
	ps, err = openPending(keys, values[0], state)
	if err != nil || ps.Provider != name {
		return pendingSignIn{}, "state not bound to this browser", nil
	}
	return ps, "", nil
}

// verifyToken is v.Verify as a span of its own: it may fetch the
// provider's keys.
func verifyToken(ctx context.Context, v *oidc.IDTokenVerifier, raw string) (*oidc.IDToken, error) {
	ctx, sp := childSpan(ctx, "oidc.verify")
	t, err := v.Verify(ctx, raw)
	endSpan(sp, err)
	return t, err
}
