package sessionauth

import (
	"errors"
	"html/template"
	"net/http"
	"strconv"
	"strings"

	"github.com/sessionauth/caddy-sessionauth/accounts"
	"github.com/sessionauth/caddy-sessionauth/session"
)

// Adding an authenticator app (SPEC 15): POST /account/totp makes a
// secret and shows it (text, otpauth URI, QR code), keeping it in the
// store for totpEnrolTTL under the session's id, never in the page's
// form; POST /account/totp/confirm with the app's first code turns it
// on. POST /account/totp/remove turns it off.

// Why an authenticator app is not added or removed.
var (
	errTOTPOn       = errors.New("an authenticator app is already on")
	errNoTOTP       = errors.New("no authenticator app to remove")
	errLastFactor   = errors.New("the last second factor under second_factor required")
	totpEnrolPrefix = "totp-enrol:"
)

// accountTOTPData is the page of an app being added.
type accountTOTPData struct {
	Site, Endpoints, CSRF string
	Secret, URI           string
	// Link is URI, for the page's link: otpauth: is no scheme
	// html/template lets through unless told.
	Link  template.URL
	QR    template.HTML
	Error string
}

type totpEnrolJSON struct {
	Secret string `json:"secret"`
	URI    string `json:"uri"`
}

// totpStart answers POST {endpoints}/account/totp.
func (p *accountPages) totpStart(w http.ResponseWriter, r *http.Request) error {
	cur, a, done, err := p.change(w, r)
	if done {
		return err
	}
	if refused, err := p.totpAddRefused(w, r, cur, a); refused {
		return err
	}
	enrol, err := accounts.NewTOTPEnrolment(siteLabel(p.baseURL, r), a.user)
	if err != nil {
		return p.host.storeUnavailable(w, r, err)
	}
	return p.showEnrolment(w, r, cur, enrol, 0, http.StatusOK, "")
}

// totpAddRefused answers a TOTP the account cannot add now (refused
// true); refused is false when it can.
func (p *accountPages) totpAddRefused(w http.ResponseWriter, r *http.Request, cur *session.Session, a accountOf) (refused bool, err error) {
	switch {
	case a.operatorTOTP():
		return true, p.refusedChange(w, r, cur, a, http.StatusForbidden, "totp_is_the_operators",
			"The authenticator app of this account is set by the site's operator.")
	case a.totp():
		return true, p.refusedChange(w, r, cur, a, http.StatusConflict, "totp_on",
			"An authenticator app is already on. Remove it first to add another.")
	}
	return false, nil
}

// showEnrolment keeps the enrolment under the session's id (with the
// wrong codes given so far) and shows it.
func (p *accountPages) showEnrolment(w http.ResponseWriter, r *http.Request, cur *session.Session, e accounts.TOTPEnrolment, tries, status int, why string) error {
	v := e.Secret + "\x00" + e.URI + "\x00" + strconv.Itoa(tries)
	if err := p.store.Stash(r.Context(), totpEnrolPrefix+cur.ID, []byte(v), totpEnrolTTL, p.now()); err != nil {
		return p.host.storeUnavailable(w, r, err)
	}
	if !wantsPage(r) {
		if why != "" {
			return writeJSON(w, status, errorBody{"wrong_code"})
		}
		return writeJSON(w, status, totpEnrolJSON{Secret: e.Secret, URI: e.URI})
	}
	htmlHeaders(w)
	w.Header().Set("Referrer-Policy", "same-origin")
	w.WriteHeader(status)
	return renderPage(w, pageAccountTOTP, accountTOTPData{Site: siteLabel(p.baseURL, r), Endpoints: p.endpoints,
		CSRF: csrfToken(cur), Secret: e.Secret, URI: e.URI, Link: otpauthLink(e.URI), QR: qrHTML(e), Error: why})
}

// totpConfirm answers POST {endpoints}/account/totp/confirm (code).
func (p *accountPages) totpConfirm(w http.ResponseWriter, r *http.Request) error {
	cur, a, done, err := p.change(w, r)
	if done {
		return err
	}
	ctx := r.Context()
	v, err := p.store.Take(ctx, totpEnrolPrefix+cur.ID, p.now())
	if errors.Is(err, session.ErrNotFound) {
		return p.refusedChange(w, r, cur, a, http.StatusConflict, "enrolment_expired",
			"Adding the authenticator app took too long. Start again.")
	}
	if err != nil {
		return p.host.storeUnavailable(w, r, err)
	}
	parts := strings.SplitN(string(v), "\x00", 3)
	if len(parts) != 3 {
		return p.refusedChange(w, r, cur, a, http.StatusConflict, "enrolment_expired",
			"Adding the authenticator app took too long. Start again.")
	}
	secret, uri := parts[0], parts[1]
	tries, _ := strconv.Atoi(parts[2])
	if refused, err := p.totpAddRefused(w, r, cur, a); refused {
		return err
	}
	settle, err := p.host.spendProof(r, codeLimit, a.user)
	if err != nil {
		return p.host.refuse(w, r, err)
	}
	err = p.dir.ConfirmTOTP(ctx, a.user, secret, r.PostFormValue("code"), p.now())
	settle(err == nil)
	if err != nil {
		if tries+1 >= maxTOTPTries {
			return p.refusedChange(w, r, cur, a, http.StatusBadRequest, "wrong_code",
				"That code was wrong too many times. Start adding the authenticator app again.")
		}
		e, rerr := accounts.RedrawTOTPEnrolment(secret, uri)
		if rerr != nil {
			return p.host.storeUnavailable(w, r, rerr)
		}
		return p.showEnrolment(w, r, cur, e, tries+1, http.StatusBadRequest,
			"Wrong code. Enter the 6 digits your authenticator app shows now for this site.")
	}
	rec, err := p.update(ctx, a, func(acct *session.Account) error {
		if acct.TOTPSecret != "" {
			return errTOTPOn
		}
		acct.TOTPSecret = secret
		return nil
	})
	switch {
	case errors.Is(err, errTOTPOn):
		return p.refusedChange(w, r, cur, a, http.StatusConflict, "totp_on", "An authenticator app was added meanwhile.")
	case errors.Is(err, session.ErrNotFound):
		return answer(w, r, problemNoAccount)
	case err != nil:
		return p.host.storeUnavailable(w, r, err)
	}
	a.rec = rec
	return p.changed(w, r, cur, a, eventTOTPAdded)
}

// totpRemove answers POST {endpoints}/account/totp/remove.
func (p *accountPages) totpRemove(w http.ResponseWriter, r *http.Request) error {
	cur, a, done, err := p.change(w, r)
	if done {
		return err
	}
	switch {
	case a.operatorTOTP():
		return p.refusedChange(w, r, cur, a, http.StatusForbidden, "totp_is_the_operators",
			"The authenticator app of this account is set by the site's operator.")
	case !a.totp():
		return p.refusedChange(w, r, cur, a, http.StatusConflict, "no_totp", "There is no authenticator app to remove.")
	case !p.totpRemovable(a):
		return p.refusedChange(w, r, cur, a, http.StatusConflict, "second_factor_required",
			"This site asks for a second factor: add a passkey before you remove the authenticator app.")
	}
	rec, err := p.update(r.Context(), a, func(acct *session.Account) error {
		switch {
		case acct.TOTPSecret == "":
			return errNoTOTP
		case p.secondFactorRequired && len(acct.Passkeys) == 0:
			return errLastFactor
		}
		acct.TOTPSecret = ""
		return nil
	})
	switch {
	case errors.Is(err, errNoTOTP):
		return p.refusedChange(w, r, cur, a, http.StatusConflict, "no_totp", "There is no authenticator app to remove.")
	case errors.Is(err, errLastFactor):
		return p.refusedChange(w, r, cur, a, http.StatusConflict, "second_factor_required",
			"This site asks for a second factor: add a passkey before you remove the authenticator app.")
	case errors.Is(err, session.ErrNotFound):
		return answer(w, r, problemNoAccount)
	case err != nil:
		return p.host.storeUnavailable(w, r, err)
	}
	a.rec = rec
	return p.changed(w, r, cur, a, eventTOTPRemoved)
}
