package sessionauth

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"go.uber.org/zap"

	"github.com/sessionauth/caddy-sessionauth/accounts"
	"github.com/sessionauth/caddy-sessionauth/session"
)

// The invitation of a stored account (SPEC 15): {endpoints}/invite?token=…
// as the admin API gave it (admin_accounts.go). The page lets the person
// choose a password, or add a passkey (invite_passkey.go), then signs
// them in. The token is spent by the form's
// POST only: a GET (a mail client's or a chat's link preview) reads it
// and puts it back.

// pageInvite is the invitation's page (templates/invite.html).
const pageInvite = "invite.html"

// problemInviteGone: the token is unknown, expired or used.
var problemInviteGone = problem{http.StatusGone, "invite_invalid",
	"This invitation has expired or was used already",
	"An invitation works once, within 7 days. Ask the site's operator for a new one."}

// errInviteStale: the account of an invitation is gone, disabled, or
// has its password already (set from another invitation).
var errInviteStale = errors.New("invitation no longer applies")

// invitePage is what the invitation page shows.
type invitePage struct {
	Host, Action, CSRF, Token, User, Error string
	// Passkeys: passkeys are on, the page has "Add a passkey" (passkeys.js
	// from Endpoints).
	Passkeys  bool
	Endpoints string
}

// serveInvite answers {endpoints}/invite: the page on GET, the password
// on POST; 404 without stored accounts.
func (p *signInPages) serveInvite(w http.ResponseWriter, r *http.Request) error {
	if p == nil || !p.local.stored {
		return writeJSON(w, http.StatusNotFound, errorBody{"not_found"})
	}
	if r.Method == http.MethodPost {
		return p.acceptInvite(w, r)
	}
	token := r.URL.Query().Get("token")
	inv, err := p.takeInvite(r.Context(), token)
	if errors.Is(err, session.ErrNotFound) {
		return answer(w, r, problemInviteGone)
	}
	if err != nil {
		return p.host.refuse(w, r, err)
	}
	if err := p.putInviteBack(r.Context(), token, inv); err != nil {
		return p.host.refuse(w, r, err)
	}
	if _, err := p.inviteAccount(r.Context(), inv); errors.Is(err, errInviteStale) {
		return answer(w, r, problemInviteGone)
	} else if err != nil {
		return p.host.refuse(w, r, err)
	}
	return p.renderInvite(w, r, http.StatusOK, invitePage{Token: token, User: inv.User})
}

// acceptInvite spends the invitation: the password is set and the
// person signed in.
func (p *signInPages) acceptInvite(w http.ResponseWriter, r *http.Request) error {
	l := p.local
	if crossSite(r) {
		return answer(w, r, problemCrossSite)
	}
	if err := l.host.rateLimit(r, limitLogin, clientKey(clientIP(r)), "", l.loginRate); err != nil {
		return l.host.refuse(w, r, err)
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxSignInForm)
	if err := r.ParseForm(); err != nil {
		return answer(w, r, problemBadForm)
	}
	if !p.validFormToken(r) {
		return answer(w, r, problemFormExpired)
	}
	ctx := r.Context()
	token := r.PostFormValue("token")
	inv, err := p.takeInvite(ctx, token)
	if errors.Is(err, session.ErrNotFound) {
		return answer(w, r, problemInviteGone)
	}
	if err != nil {
		return p.host.refuse(w, r, err)
	}
	password := r.PostFormValue("password")
	problemText := accounts.PasswordProblem(password)
	if problemText == "" && password != r.PostFormValue("confirm") {
		problemText = "The two passwords differ. Type the same password twice."
	}
	if problemText != "" {
		// Not spent: the person tries again with the same link.
		if err := p.putInviteBack(ctx, token, inv); err != nil {
			return p.host.refuse(w, r, err)
		}
		return p.renderInvite(w, r, http.StatusBadRequest, invitePage{Token: token, User: inv.User, Error: problemText})
	}
	hash, err := accounts.HashPassword(password)
	if err != nil {
		return p.host.refuse(w, r, err)
	}
	st, err := accountsOf(p.live.store())
	if err != nil {
		return p.host.refuse(w, r, err)
	}
	acct, err := st.UpdateAccount(ctx, inv.User, func(a *session.Account) error {
		if a.Disabled || a.PasswordHash != "" {
			return errInviteStale
		}
		a.PasswordHash = hash
		return nil
	})
	if errors.Is(err, errInviteStale) || errors.Is(err, session.ErrNotFound) {
		return answer(w, r, problemInviteGone)
	}
	if err != nil {
		return p.host.refuse(w, r, err)
	}
	p.accountEvent(r, eventAccountActivated, acct.UserID)
	da := directoryAccount(acct)
	if l.needsSecondFactor(acct) {
		return l.addSecondFactor(w, r, da, signInPage{})
	}
	if acct.TOTPSecret != "" {
		// A reset that kept the second factor: the password alone is not
		// a sign-in; the code is asked at the next one.
		w.Header().Set("Location", p.endpoints+"/sign-in")
		w.WriteHeader(http.StatusSeeOther)
		return nil
	}
	who := signedIn{userID: da.User, email: da.Email, name: da.Name, roles: strings.Join(da.Roles, ","), method: session.MethodPassword}
	return l.host.finishSignIn(w, r, who, stepUpOf{}, func() error {
		l.signedInStored(r, da.User)
		w.Header().Set("Location", "/")
		w.WriteHeader(http.StatusSeeOther)
		return nil
	})
}

// takeInvite takes the invitation of token from the store (spent unless
// put back); ErrNotFound when there is none or it has expired.
func (p *signInPages) takeInvite(ctx context.Context, token string) (invitation, error) {
	return takeTicket(ctx, p.live.store(), token, inviteKey(token), p.live.now())
}

// putInviteBack stashes a taken invitation again, until it expires.
func (p *signInPages) putInviteBack(ctx context.Context, token string, inv invitation) error {
	return putTicketBack(ctx, p.live.store(), inviteKey(token), inv, p.live.now())
}

// inviteAccount is the account an invitation sets up: errInviteStale
// when it is gone, disabled or has a password already.
func (p *signInPages) inviteAccount(ctx context.Context, inv invitation) (*session.Account, error) {
	a, err := p.local.storedAccount(ctx, inv.User)
	if err != nil {
		return nil, err
	}
	if a == nil || a.Disabled || a.PasswordHash != "" {
		return nil, errInviteStale
	}
	return a, nil
}

func (p *signInPages) renderInvite(w http.ResponseWriter, r *http.Request, status int, page invitePage) error {
	page.Host = sanitise(r.Host, 256)
	page.Action = p.endpoints + "/invite"
	page.CSRF = p.formToken(w, r)
	page.Passkeys, page.Endpoints = p.passkeysOn, p.endpoints
	if page.Passkeys {
		scriptPageHeaders(w)
	} else {
		htmlHeaders(w)
	}
	// The token is in the address: no Referer carries more than the
	// origin. Not no-referrer: under it a browser posts the form with
	// Origin: null, which crossSite refuses.
	w.Header().Set("Referrer-Policy", "strict-origin")
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return nil
	}
	return renderPage(w, pageInvite, page)
}

// accountEvent logs and records an account's own change (actor self).
func (p *signInPages) accountEvent(r *http.Request, typ, userID string) {
	e := session.Event{Type: typ, At: p.live.now().UTC(), UserID: userID, IP: clientIP(r), Actor: session.ActorSelf}
	p.host.logEvent(e)
	if err := p.live.store().Record(r.Context(), e, p.live.policy()); err != nil {
		p.live.logger().Error("recording an account event", zap.String("event", typ), zap.Error(err))
	}
}
