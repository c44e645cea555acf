package sessionauth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sessionauth/caddy-sessionauth/accounts"
	"github.com/sessionauth/caddy-sessionauth/session"
)

// The accounts form: its size, what it says, and how long the password
// step waits for the code.
const (
	codeStepTTL      = 5 * time.Minute
	maxSignInForm    = 16 << 10
	wrongCredentials = "Wrong user name or password."
	wrongPassword    = "Wrong password." // the step-up's: its user name is fixed
	maxTypedName     = 256               // the user name shown again after a wrong password
	stepExpired      = "That step has expired or was used already. Please enter your user name and password again."
	wrongCode        = "Wrong code. Enter the 6 digits your authenticator app shows now."
	codeUsed         = "That code was used already. Wait for the next one."
)

// maxCodeTries is how many codes one right password may be followed by
// before the password is asked again (each also counts in login_rate).
const maxCodeTries = 3

// localSignIn is the accounts form of the sign-in page: the password,
// then the code of an account with TOTP, checked by the accounts
// directory; then the handler mints the session.
type localSignIn struct {
	// stored: accounts also live in the store (accounts_stored.go);
	// secondFactor is sign_in's second_factor.
	stored       bool
	secondFactor string

	// forward: where a browser may go after signing in (forwardauth.go);
	// nil without forward_auth.
	forward   *ForwardAuth
	dir       *accounts.Directory
	loginRate *Rate
	pages     *signInPages
	host      localSignInHost
	live      handlerLive
	// notifier is the handler's, built after the sign-in (nil when off).
	notifier func() *notifier
}

// localSignInHost is what the accounts form takes from the handler: its
// limits, its answers and the end of every sign-in.
type localSignInHost interface {
	rateLimit(r *http.Request, kind, who, userID string, rate *Rate) error
	spendProof(r *http.Request, l proofLimit, userID string) (settle func(right bool), err error)
	refuse(w http.ResponseWriter, r *http.Request, err error) error
	finishSignIn(w http.ResponseWriter, r *http.Request, who signedIn, su stepUpOf, land func() error) error
}

// accountsDirectory is the directory of list; the TOTP codes used are
// remembered in the handler's store.
func accountsDirectory(list []accounts.Account, nameKey []byte, live handlerLive) *accounts.Directory {
	return accounts.New(list, nameKey, liveLedger(live.store))
}

// liveLedger is the handler's store as it is at each use.
type liveLedger func() session.Store

func (l liveLedger) Hit(ctx context.Context, key string, window time.Duration, now time.Time) (int64, time.Duration, error) {
	return l().Hit(ctx, key, window, now)
}

// serveForm checks the accounts form: login_rate, cross-site, CSRF,
// then the password (and the code).
func (l *localSignIn) serveForm(w http.ResponseWriter, r *http.Request) error {
	if crossSite(r) {
		return answer(w, r, problemCrossSite)
	}
	if err := l.host.rateLimit(r, limitLogin, clientKey(clientIP(r)), "", l.loginRate); err != nil {
		return l.host.refuse(w, r, err)
	}
	if !l.hasAccounts() {
		return answer(w, r, problemNoAccounts)
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxSignInForm)
	if err := r.ParseForm(); err != nil {
		return answer(w, r, problemBadForm)
	}
	if !l.pages.validFormToken(r) {
		return answer(w, r, problemFormExpired)
	}
	next := l.forward.signInNext(r.PostFormValue("next"))
	page := signInPage{Next: next}
	if r.PostFormValue("step_up") == "1" {
		// The step-up page again for its errors and code step; whether
		// the session is kept is finishSignIn's decision.
		sp, err := l.pages.stepUpPage(r, next)
		if err != nil {
			return l.host.refuse(w, r, err)
		}
		if sp.StepUp && sp.Accounts {
			page = sp
		}
	}

	var acct accounts.Account
	var stored *session.Account // a stored account's record
	codeTries := 0              // wrong codes already given after this password
	// secondStep: the code field answers a second step (TOTP, or a
	// recovery code in place of a passkey or TOTP).
	secondStep := false
	if enrol := r.PostFormValue("enrol"); enrol != "" {
		return l.confirmEnrolment(w, r, enrol, next) // signin_enrol.go
	}
	if pending := r.PostFormValue("pending"); pending != "" {
		// The code step: the password was checked a moment ago.
		ctx := r.Context()
		v, err := l.live.store().Take(ctx, "account:"+pending, l.live.now())
		if errors.Is(err, session.ErrNotFound) {
			page.Error = stepExpired
			return l.pages.render(w, r, http.StatusUnauthorized, page)
		}
		if err != nil {
			return l.host.refuse(w, r, err)
		}
		user, rest, _ := strings.Cut(string(v), "\x00")
		tried, binding, _ := strings.Cut(rest, "\x00")
		if binding == "" || subtle.ConstantTimeCompare([]byte(binding), []byte(l.pages.formBinding(r))) != 1 {
			// Another browser's step (its pending value seen on a shared
			// screen, in a log): taken above, so gone for both.
			page.Error = stepExpired
			return l.pages.render(w, r, http.StatusUnauthorized, page)
		}
		codeTries, _ = strconv.Atoi(tried)
		var ok bool
		if acct, stored, ok, err = l.lookup(ctx, user); err != nil {
			return l.host.refuse(w, r, err)
		}
		if ok {
			if acct, err = l.withStoredTOTP(ctx, acct); err != nil {
				return l.host.refuse(w, r, err)
			}
		}
		// An account whose only second factor is a passkey has this step
		// too (askCode): its code field takes a recovery code.
		withPasskey := false
		if ok && acct.TOTP == "" {
			if withPasskey, err = l.pages.hasPasskey(r, acct.User); err != nil {
				return l.host.refuse(w, r, err)
			}
		}
		if !ok || (acct.TOTP == "" && !withPasskey) {
			page.Error = wrongCredentials
			return l.pages.render(w, r, http.StatusUnauthorized, page)
		}
		secondStep = true
		if page.StepUp && acct.User != page.User {
			page = signInPage{Next: next} // another user: a plain sign-in
		}
	} else {
		user := userIDOf(r.PostFormValue("username"))
		var known, ok bool
		var checkErr error
		if acct, stored, known, ok, checkErr = l.checkPassword(r.Context(), user, r.PostFormValue("password")); checkErr != nil {
			return l.host.refuse(w, r, checkErr)
		}
		if !ok {
			if known {
				l.pages.loginFailed(r, user, "password")
			} else {
				l.pages.loginFailed(r, "", "password")
			}
			page.Error = wrongCredentials
			if page.StepUp {
				page.Error = wrongPassword
			} else {
				page.Typed = sanitise(r.PostFormValue("username"), maxTypedName)
			}
			return l.pages.render(w, r, http.StatusUnauthorized, page)
		}
		if page.StepUp && acct.User != page.User {
			page = signInPage{Next: next} // another user: a plain sign-in
		}
		var err error
		if acct, err = l.withStoredTOTP(r.Context(), acct); err != nil {
			return l.host.refuse(w, r, err)
		}
		withPasskey, err := l.pages.hasPasskey(r, acct.User)
		if err != nil {
			return l.host.refuse(w, r, err)
		}
		// A passkey is a second factor too: its account never signs in
		// with the password alone.
		if (acct.TOTP != "" && r.PostFormValue("code") == "") || (withPasskey && acct.TOTP == "") {
			return l.askCode(w, r, acct, page, http.StatusOK, 0)
		}
		if l.mustAddSecondFactor(stored, acct, withPasskey) { // signin_enrol_operator.go
			return l.addSecondFactor(w, r, acct, page)
		}
	}

	method := session.MethodPassword
	if acct.TOTP != "" || secondStep {
		settle, err := l.host.spendProof(r, codeLimit, acct.User)
		if err != nil {
			return l.codesLocked(w, r, page, err)
		}
		reason, recovered, err := l.checkSecondFactor(r, acct, r.PostFormValue("code"))
		if err != nil {
			return l.host.refuse(w, r, err)
		}
		settle(reason == "")
		if reason != "" {
			l.pages.loginFailed(r, acct.User, "totp")
			page.Error = reason
			if codeTries+1 < maxCodeTries {
				// The password was right: ask for the code again, on a
				// new one-use step, a few times before the password.
				return l.askCode(w, r, acct, page, http.StatusUnauthorized, codeTries+1)
			}
			page.Error += " Enter your user name and password again."
			if !page.StepUp {
				page.Typed = acct.User
			}
			return l.pages.render(w, r, http.StatusUnauthorized, page)
		}
		method = session.MethodPasswordTOTP
		if recovered {
			method = methodPasswordRecovery
		}
	}
	who := signedIn{userID: acct.User, email: acct.Email, name: acct.Name, roles: strings.Join(acct.Roles, ","), method: method}
	land := func() error {
		if stored != nil {
			l.signedInStored(r, acct.User)
		}
		w.Header().Set("Location", next)
		w.WriteHeader(http.StatusSeeOther)
		return nil
	}
	if method == methodPasswordRecovery {
		who, land = l.mailRecoveryCodeUsed(r, who, acct.Email, land)
	}
	return l.host.finishSignIn(w, r, who, stepUpOf{on: page.StepUp}, land)
}

// codesLocked answers a code step refused because the account's wrong
// codes reached codeLimit (from anywhere): the sign-in page saying so,
// 429 with Retry-After. Any other error is the store's.
func (l *localSignIn) codesLocked(w http.ResponseWriter, r *http.Request, page signInPage, err error) error {
	var rl errRateLimited
	if !errors.As(err, &rl) {
		return l.host.refuse(w, r, err)
	}
	mins := int((rl.retry + time.Minute - 1) / time.Minute)
	w.Header().Set("Retry-After", strconv.Itoa(max(int((rl.retry+time.Second-1)/time.Second), 1)))
	page.Pending = ""
	page.Error = "Too many wrong codes were entered for this account, so it cannot sign in with a code for now. Try again in " +
		strconv.Itoa(max(mins, 1)) + " minutes."
	if mins <= 1 {
		page.Error = strings.Replace(page.Error, "minutes", "minute", 1)
	}
	return l.pages.render(w, r, http.StatusTooManyRequests, page)
}

// askCode keeps the password step for codeStepTTL, one use, with the
// wrong codes given so far and the browser it belongs to (formBinding),
// and shows the code field.
func (l *localSignIn) askCode(w http.ResponseWriter, r *http.Request, acct accounts.Account, page signInPage, status, tries int) error {
	var b [16]byte
	_, _ = rand.Read(b[:])
	pending := hex.EncodeToString(b[:])
	ctx := r.Context()
	v := acct.User + "\x00" + strconv.Itoa(tries) + "\x00" + l.pages.formBinding(r)
	err := l.live.store().Stash(ctx, "account:"+pending, []byte(v), codeStepTTL, l.live.now())
	if err != nil {
		return l.host.refuse(w, r, err)
	}
	page.Pending, page.User = pending, acct.User
	withPasskey, err := l.pages.hasPasskey(r, acct.User)
	if err != nil {
		return l.host.refuse(w, r, err)
	}
	page.SecondPasskey = withPasskey
	return l.pages.render(w, r, status, page)
}

// checkCode checks a TOTP code with the directory (which refuses a code
// used already) and returns what to tell the user, or "" when the code
// is good.
func (l *localSignIn) checkCode(r *http.Request, acct accounts.Account, code string) string {
	switch err := l.dir.CheckTOTP(r.Context(), acct, code, l.live.now()); {
	case err == nil:
		return ""
	case errors.Is(err, accounts.ErrCodeUsed):
		return codeUsed
	}
	return wrongCode
}
