package sessionauth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"net/url"
	"time"

	"go.uber.org/zap"

	"github.com/sessionauth/caddy-sessionauth/internal/endtext"
	"github.com/sessionauth/caddy-sessionauth/session"
)

// The sign-in page's forms: the CSRF cookie beside the session cookie.
const (
	signInCookieSuffix = "_signin"
	signInCookieMaxAge = time.Hour
)

// signInPages is the gateway's own sign-in (sign_in, SPEC 11) at
// {endpoints}/sign-in: the page with the providers' buttons and the
// accounts form, the step-up page, and what both ways in share (the
// forms' CSRF cookie, the page of a refusal, the login_failed event).
// The accounts form itself is local's.
type signInPages struct {
	cookies *cookieRules
	// forward: where a browser may go after signing in (forwardauth.go);
	// nil without forward_auth.
	forward   *ForwardAuth
	endpoints string
	oidc      []*OIDCProvider
	local     *localSignIn
	// passkeysOn: sign_in has passkeys; the pages get their button.
	passkeysOn bool
	host       signInHost
	live       handlerLive

	// forgot: the forgot-password page is on (forgot.go); the page links it.
	forgot bool
}

// signInHost is what the sign-in page takes from the handler: its
// session, cookies and answers, and the OIDC buttons' addresses.
type signInHost interface {
	heldSession(r *http.Request) (*session.Session, error)
	takeSignedOut(w http.ResponseWriter, r *http.Request) bool
	refuse(w http.ResponseWriter, r *http.Request, err error) error
	logEvent(e session.Event)
}

// handlerLive is what the sign-in reads of the handler at each use: the
// store, the clock, the policy and the logger, which Provision sets
// after the sign-in is built (and tests swap).
type handlerLive struct {
	store  func() session.Store
	now    func() time.Time
	policy func() session.Policy
	logger func() *zap.Logger
}

// newSignIn readies the sign-in of h.SignIn (nil without one): accounts
// (file included), their directory, the OIDC providers.
func newSignIn(h *Handler) (*signInPages, error) {
	si := h.SignIn
	if si == nil {
		return nil, nil
	}
	if err := si.check(); err != nil {
		return nil, err
	}
	list, err := si.provision()
	if err != nil {
		return nil, err
	}
	live := handlerLive{
		store:  func() session.Store { return h.store },
		now:    func() time.Time { return h.now() },
		policy: func() session.Policy { return h.policy },
		logger: func() *zap.Logger { return h.logger },
	}
	p := &signInPages{cookies: h.cookies, forward: h.ForwardAuth, endpoints: h.Endpoints, oidc: si.OIDC, host: h, live: live, passkeysOn: si.Passkeys != nil}
	p.local = &localSignIn{
		dir:       accountsDirectory(list, h.nameKey, live),
		loginRate: h.LoginRate,
		forward:   h.ForwardAuth,
		pages:     p,
		host:      h,
		live:      live,
		notifier:  func() *notifier { return h.notifier },
	}
	h.oidc = newOIDCSignIn(si)
	p.local.stored, p.local.secondFactor = si.Stored, si.SecondFactor
	p.forgot = forgotOn(si, h)
	return p, nil
}

// signInPage is what the sign-in page shows.
type signInPage struct {
	Host string
	// Action is where the forms post: the page is also shown at other
	// addresses (a refused OIDC callback, a provider that does not
	// answer), whose handlers take no form.
	Action string
	Next   string
	CSRF   string
	Error  string
	// Why the browser was sent to sign in (?session_ended=), in words.
	Notice    string
	Accounts  bool
	Providers []providerButton
	// The code step: the password was right, the account has TOTP.
	Pending string
	// The user name, fixed (the code step, a step-up).
	User string
	// The user name as typed before a wrong password, kept in the form.
	Typed string
	// A step-up (the step-up page): who is signed in, and the plain
	// sign-in page for someone else.
	StepUp    bool
	Who       string
	SwitchURL string
	// Passkeys: the "Sign in with a passkey" button (passkeys.js, under
	// Endpoints).
	Passkeys  bool
	Endpoints string
	// SecondPasskey: the code step's "Use a passkey" (the account has one).
	SecondPasskey bool
	// Forgot: the "Forgot your password?" link (forgot.go); empty when off.
	Forgot string
}

type providerButton struct{ Label, URL string }

// serve answers {endpoints}/sign-in: the page on GET, the accounts form
// on POST; 404 without sign_in (p nil).
func (p *signInPages) serve(w http.ResponseWriter, r *http.Request) error {
	if p == nil {
		return writeJSON(w, http.StatusNotFound, errorBody{"not_found"})
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		next := p.forward.signInNext(r.URL.Query().Get("next"))
		oneProvider := !p.local.hasAccounts() && len(p.oidc) == 1
		if r.URL.Query().Get("step_up") == "1" {
			page, err := p.stepUpPage(r, next)
			if err != nil {
				return p.host.refuse(w, r, err)
			}
			if page.StepUp {
				if len(page.Providers) == 1 && oneProvider {
					// One way in: straight to the provider, as below.
					w.Header().Set("Location", page.Providers[0].URL)
					w.WriteHeader(http.StatusSeeOther)
					return nil
				}
				return p.render(w, r, http.StatusOK, page)
			}
		}
		if oneProvider {
			// One way in: straight to the provider.
			w.Header().Set("Location", providerStartURL(p.endpoints, p.oidc[0].Name, next))
			w.WriteHeader(http.StatusSeeOther)
			return nil
		}
		notice := endtext.Messages[r.URL.Query().Get("session_ended")]
		if p.host.takeSignedOut(w, r) && notice == "" {
			notice = endtext.Messages[session.EndLogout]
		}
		return p.render(w, r, http.StatusOK, signInPage{Next: next, Notice: notice})
	case http.MethodPost:
		return p.local.serveForm(w, r)
	}
	return methodNotAllowed(w, "GET, HEAD, POST")
}

// render draws the sign-in page (or the step-up page) with the forms'
// CSRF token, and, on the plain page, the providers' buttons.
func (p *signInPages) render(w http.ResponseWriter, r *http.Request, status int, page signInPage) error {
	page.Host = sanitise(r.Host, 256)
	page.Action = p.endpoints + "/sign-in"
	page.CSRF = p.formToken(w, r)
	page.Endpoints = p.endpoints
	page.Passkeys = p.passkeysOn && (!page.StepUp || page.Accounts)
	tmpl := pageSignIn
	if page.StepUp {
		tmpl = pageStepUp // its way in is set by stepUpPage
	} else {
		page.Accounts = p.local.hasAccounts()
		if p.forgot && page.Pending == "" {
			page.Forgot = p.endpoints + "/forgot"
		}
		if page.Pending == "" {
			for _, o := range p.oidc {
				page.Providers = append(page.Providers, providerButton{Label: o.label(), URL: providerStartURL(p.endpoints, o.Name, page.Next)})
			}
		}
	}
	htmlHeaders(w)
	formAction := "'self'"
	if p.forward != nil {
		// Browsers hold a form's redirect to form-action too: a sign-in
		// goes on to the app's host.
		formAction = p.forward.formAction()
	}
	csp := pageCSP(formAction)
	if page.Passkeys {
		csp = "script-src 'self'; connect-src 'self'; " + csp // passkeys.js
	}
	w.Header().Set("Content-Security-Policy", csp)
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return nil
	}
	return renderPage(w, tmpl, page)
}

// stepUpPage is the step-up page for the session the client holds, when
// a step-up can confirm it: an OIDC session's provider (asked to sign the
// user in again), an account session's form with the user name fixed.
// Otherwise (no session, a hand-off's or an admin's, a provider or
// account no longer configured) StepUp is false: the plain sign-in.
func (p *signInPages) stepUpPage(r *http.Request, next string) (signInPage, error) {
	page := signInPage{Next: next}
	s, err := p.host.heldSession(r)
	if err != nil || s == nil {
		return page, err
	}
	_, _, account, err := p.local.lookup(r.Context(), s.UserID)
	if err != nil {
		return page, err
	}
	switch o := p.provider(s.Provider); {
	case o != nil && s.AuthMethod == session.MethodOIDC(s.Provider):
		page.Providers = []providerButton{{Label: o.label(), URL: providerStepUpURL(p.endpoints, o.Name, next)}}
	case s.Provider == "" && accountSession(s) && account:
		page.Accounts, page.User = true, s.UserID
	default:
		return page, nil
	}
	page.StepUp, page.Who = true, orDefault(s.Name, s.UserID)
	page.SwitchURL = p.endpoints + "/sign-in?next=" + url.QueryEscape(next)
	return page, nil
}

// provider is the configured OIDC provider named name, nil if none.
func (p *signInPages) provider(name string) *OIDCProvider {
	for _, o := range p.oidc {
		if o.Name == name {
			return o
		}
	}
	return nil
}

// hasAccount reports whether user is a local account's id (p may be
// nil: no sign_in, no accounts).
func (p *signInPages) hasAccount(user string) bool {
	if p == nil {
		return false
	}
	_, ok := p.local.dir.Lookup(user)
	if !ok && p.local.stored {
		// A store that cannot say counts as taken: a provider's sign-in
		// must not become a stored account's id by chance.
		sa, err := p.local.storedAccount(context.Background(), user)
		ok = sa != nil || err != nil
	}
	return ok
}

func (p *signInPages) formCookieName(r *http.Request) string {
	return p.cookies.cookieName(r) + signInCookieSuffix
}

// formToken is the forms' CSRF token: a random value in an HttpOnly
// cookie that the form repeats. A page on another site can make the
// browser send the cookie but cannot read it to fill the form.
func (p *signInPages) formToken(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(p.formCookieName(r)); err == nil && validDeviceID(c.Value) {
		return c.Value
	}
	var b [deviceIDLen / 2]byte
	_, _ = rand.Read(b[:])
	v := hex.EncodeToString(b[:])
	c := p.cookies.sessionCookie(r, v, signInCookieMaxAge)
	c.Name = p.formCookieName(r)
	http.SetCookie(w, c)
	return v
}

func (p *signInPages) validFormToken(r *http.Request) bool {
	c, err := r.Cookie(p.formCookieName(r))
	if err != nil || !validDeviceID(c.Value) {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(c.Value), []byte(r.PostFormValue("csrf"))) == 1
}

// formBinding binds a code step to the browser that gave the password,
// as the OIDC pending sign-in is bound to its cookie: the SHA-256 of the
// sign-in form's cookie (checked by validFormToken before any step), in
// hex; empty without the cookie, and an empty one matches nothing.
func (p *signInPages) formBinding(r *http.Request) string {
	c, err := r.Cookie(p.formCookieName(r))
	if err != nil || !validDeviceID(c.Value) {
		return ""
	}
	return hex.EncodeToString(sha256Of(c.Value))
}

// loginFailed logs and records a refused sign-in, of either way in
// (never the password or code); userID is empty when the account does
// not exist.
func (p *signInPages) loginFailed(r *http.Request, userID, reason string) {
	e := session.Event{Type: session.EventLoginFailed, At: p.live.now().UTC(), UserID: userID, IP: clientIP(r), Reason: reason}
	p.host.logEvent(e)
	ctx := r.Context()
	if err := p.live.store().Record(ctx, e, p.live.policy()); err != nil {
		p.live.logger().Error("recording a failed sign-in", zap.Error(err))
	}
}
