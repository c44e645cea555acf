package sessionauth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"html/template"
	"net/http"

	"github.com/sessionauth/caddy-sessionauth/accounts"
	"github.com/sessionauth/caddy-sessionauth/session"
)

// `second_factor required` (SPEC 15): a stored account with neither
// TOTP nor a passkey adds an authenticator app right after its password,
// before it is signed in. The password step is kept for codeStepTTL,
// used once and bound to the browser, as the code step is (askCode);
// the first code turns the app on and signs in (password+totp).

// pageSignInTOTP is the enrolment's page (templates/signin-totp.html).
const pageSignInTOTP = "signin-totp.html"

// enrolledTOTPEvent is the audit event of an app added here (the
// account page's totp_added).
const enrolledTOTPEvent = "totp_added"

// An account with a passkey is past this step already (askCode asks
// for it); the operator's accounts enrol here too
// (signin_enrol_operator.go).

// enrolStep is what the enrolment's Stash keeps.
type enrolStep struct {
	User    string `json:"u"`
	Secret  string `json:"s"`
	URI     string `json:"uri"`
	Binding string `json:"b"`
	Tries   int    `json:"t"`
}

// enrolPage is what the enrolment's page shows.
type enrolPage struct {
	Host, Action, CSRF, Next, Enrol, User, Secret, Error string
	QR                                                   template.HTML // accounts' own SVG: rectangles only
}

// addSecondFactor starts the enrolment for acct, whose password was right.
func (l *localSignIn) addSecondFactor(w http.ResponseWriter, r *http.Request, acct accounts.Account, page signInPage) error {
	e, err := accounts.NewTOTPEnrolment(sanitise(r.Host, 256), acct.User)
	if err != nil {
		return l.host.refuse(w, r, err)
	}
	return l.enrolStep(w, r, http.StatusOK, enrolStep{User: acct.User, Secret: e.Secret, URI: e.URI}, page.Next, "")
}

// enrolStep stashes the step under a new one-use key and shows the page.
func (l *localSignIn) enrolStep(w http.ResponseWriter, r *http.Request, status int, st enrolStep, next, problemText string) error {
	e, err := accounts.RedrawTOTPEnrolment(st.Secret, st.URI)
	if err != nil {
		return l.host.refuse(w, r, err)
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	key := hex.EncodeToString(b[:])
	st.Binding = l.pages.formBinding(r)
	v, _ := json.Marshal(st)
	if err := l.live.store().Stash(r.Context(), "enrol:"+key, v, codeStepTTL, l.live.now()); err != nil {
		return l.host.refuse(w, r, err)
	}
	p := enrolPage{Host: sanitise(r.Host, 256), Action: l.pages.endpoints + "/sign-in", CSRF: l.pages.formToken(w, r), Next: next,
		Enrol: key, User: st.User, Secret: e.Secret, Error: problemText, QR: template.HTML(e.QR)} // #nosec: the accounts package's SVG
	htmlHeaders(w)
	w.WriteHeader(status)
	return renderPage(w, pageSignInTOTP, p)
}

// confirmEnrolment checks the first code of the app being added: right,
// the account gets its TOTP and is signed in; wrong, the page again (a
// few times, then the password again).
func (l *localSignIn) confirmEnrolment(w http.ResponseWriter, r *http.Request, key, next string) error {
	ctx := r.Context()
	page := signInPage{Next: next}
	v, err := l.live.store().Take(ctx, "enrol:"+key, l.live.now())
	if errors.Is(err, session.ErrNotFound) {
		page.Error = stepExpired
		return l.pages.render(w, r, http.StatusUnauthorized, page)
	}
	if err != nil {
		return l.host.refuse(w, r, err)
	}
	var st enrolStep
	if json.Unmarshal(v, &st) != nil || st.Binding == "" || subtle.ConstantTimeCompare([]byte(st.Binding), []byte(l.pages.formBinding(r))) != 1 {
		page.Error = stepExpired
		return l.pages.render(w, r, http.StatusUnauthorized, page)
	}
	settle, err := l.host.spendProof(r, codeLimit, st.User)
	if err != nil {
		return l.codesLocked(w, r, page, err)
	}
	err = l.dir.ConfirmTOTP(ctx, st.User, st.Secret, r.PostFormValue("code"), l.live.now())
	settle(err == nil)
	if err != nil {
		l.pages.loginFailed(r, st.User, "totp")
		reason := wrongCode
		if errors.Is(err, accounts.ErrCodeUsed) {
			reason = codeUsed
		}
		if st.Tries+1 < maxCodeTries {
			st.Tries++
			return l.enrolStep(w, r, http.StatusUnauthorized, st, next, reason)
		}
		page.Error, page.Typed = reason+" Enter your user name and password again.", st.User
		return l.pages.render(w, r, http.StatusUnauthorized, page)
	}
	parts, err := accountsOf(l.live.store())
	if err != nil {
		return l.host.refuse(w, r, err)
	}
	if err := operatorRecord(ctx, parts, st.User, l); err != nil {
		return l.host.refuse(w, r, err)
	}
	acct, err := parts.UpdateAccount(ctx, st.User, func(a *session.Account) error {
		if a.Disabled {
			return errInviteStale
		}
		a.TOTPSecret = st.Secret
		return nil
	})
	if errors.Is(err, errInviteStale) || errors.Is(err, session.ErrNotFound) {
		page.Error = wrongCredentials
		return l.pages.render(w, r, http.StatusUnauthorized, page)
	}
	if err != nil {
		return l.host.refuse(w, r, err)
	}
	l.pages.accountEvent(r, enrolledTOTPEvent, acct.UserID)
	who, to := l.enrolledWho(acct)
	who, land := l.mailOnLanding(r, who, enrolledTOTPEvent, to, func() error {
		if acct.Stored {
			l.signedInStored(r, acct.UserID)
		}
		w.Header().Set("Location", next)
		w.WriteHeader(http.StatusSeeOther)
		return nil
	})
	return l.host.finishSignIn(w, r, who, stepUpOf{}, land)
}
