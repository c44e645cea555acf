package sessionauth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"go.uber.org/zap"

	"github.com/sessionauth/caddy-sessionauth/internal/endtext"
	"github.com/sessionauth/caddy-sessionauth/session"
)

// The accounts form: its fields, the CSRF cookie beside the session
// cookie, and how long the password step waits for the code.
const (
	signInCookieSuffix = "_signin"
	signInCookieMaxAge = time.Hour
	codeStepTTL        = 5 * time.Minute
	maxSignInForm      = 16 << 10
	wrongCredentials   = "Wrong user name or password."
	wrongPassword      = "Wrong password." // the step-up's: its user name is fixed
	maxTypedName       = 256               // the user name shown again after a wrong password
	stepExpired        = "That step has expired or was used already. Please enter your user name and password again."
)

var totpOpts = totp.ValidateOpts{Period: 30, Skew: 1, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// totpKey checks a base32 TOTP secret by computing a code with it.
func totpKey(secret string) (string, error) {
	s := strings.ToUpper(strings.ReplaceAll(secret, " ", ""))
	if _, err := totp.GenerateCodeCustom(s, time.Unix(0, 0), totpOpts); err != nil {
		return "", errors.New("must be a base32 secret")
	}
	return s, nil
}

// provisionSignIn readies the sign-in: accounts (file included), the
// dummy hashes of their classes, the OIDC providers.
func (h *Handler) provisionSignIn() error {
	si := h.SignIn
	if si == nil {
		return nil
	}
	if err := si.check(); err != nil {
		return err
	}
	if err := si.provision(); err != nil {
		return err
	}
	h.provisionDummies()
	return h.provisionProviders()
}

func (h *Handler) signInCookieName(r *http.Request) string {
	return h.cookieName(r) + signInCookieSuffix
}

// formToken is the accounts form's CSRF token: a random value in an
// HttpOnly cookie that the form repeats. A page on another site can make
// the browser send the cookie but cannot read it to fill the form.
func (h *Handler) formToken(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(h.signInCookieName(r)); err == nil && validDeviceID(c.Value) {
		return c.Value
	}
	var b [deviceIDLen / 2]byte
	_, _ = rand.Read(b[:])
	v := hex.EncodeToString(b[:])
	c := h.sessionCookie(r, v, signInCookieMaxAge)
	c.Name = h.signInCookieName(r)
	http.SetCookie(w, c)
	return v
}

func (h *Handler) validFormToken(r *http.Request) bool {
	c, err := r.Cookie(h.signInCookieName(r))
	if err != nil || !validDeviceID(c.Value) {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(c.Value), []byte(r.PostFormValue("csrf"))) == 1
}

// formBinding binds a code step to the browser that gave the password,
// as the OIDC pending sign-in is bound to its cookie: the SHA-256 of the
// sign-in form's cookie (checked by validFormToken before any step), in
// hex; empty without the cookie, and an empty one matches nothing.
func (h *Handler) formBinding(r *http.Request) string {
	c, err := r.Cookie(h.signInCookieName(r))
	if err != nil || !validDeviceID(c.Value) {
		return ""
	}
	return hex.EncodeToString(sha256Of(c.Value))
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
}

type providerButton struct{ Label, URL string }

// serveSignIn answers {endpoints}/sign-in: the page on GET, the accounts
// form on POST.
func (h *Handler) serveSignIn(w http.ResponseWriter, r *http.Request) error {
	if h.SignIn == nil {
		return writeJSON(w, http.StatusNotFound, errorBody{"not_found"})
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		next := h.signInNext(r.URL.Query().Get("next"))
		si := h.SignIn
		if r.URL.Query().Get("step_up") == "1" {
			page, err := h.stepUpPage(r, next)
			if err != nil {
				return h.refuse(w, r, err)
			}
			if page.StepUp {
				if len(page.Providers) == 1 && len(si.accounts) == 0 && len(si.OIDC) == 1 {
					// One way in: straight to the provider, as below.
					w.Header().Set("Location", page.Providers[0].URL)
					w.WriteHeader(http.StatusSeeOther)
					return nil
				}
				return h.renderSignIn(w, r, http.StatusOK, page)
			}
		}
		if len(si.accounts) == 0 && len(si.OIDC) == 1 {
			// One way in: straight to the provider.
			w.Header().Set("Location", h.providerStart(si.OIDC[0].Name, next))
			w.WriteHeader(http.StatusSeeOther)
			return nil
		}
		notice := endtext.Messages[r.URL.Query().Get("session_ended")]
		if h.takeSignedOut(w, r) && notice == "" {
			notice = endtext.Messages[session.EndLogout]
		}
		return h.renderSignIn(w, r, http.StatusOK, signInPage{Next: next, Notice: notice})
	case http.MethodPost:
		return h.accountSignIn(w, r)
	}
	return methodNotAllowed(w, "GET, HEAD, POST")
}

func (h *Handler) renderSignIn(w http.ResponseWriter, r *http.Request, status int, page signInPage) error {
	page.Host = sanitise(r.Host, 256)
	page.Action = h.Endpoints + "/sign-in"
	page.CSRF = h.formToken(w, r)
	tmpl := pageSignIn
	if page.StepUp {
		tmpl = pageStepUp // its way in is set by stepUpPage
	} else {
		page.Accounts = len(h.SignIn.accounts) > 0
		if page.Pending == "" {
			for _, p := range h.SignIn.OIDC {
				page.Providers = append(page.Providers, providerButton{Label: p.label(), URL: h.providerStart(p.Name, page.Next)})
			}
		}
	}
	htmlHeaders(w)
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
func (h *Handler) stepUpPage(r *http.Request, next string) (signInPage, error) {
	page := signInPage{Next: next}
	s, err := h.heldSession(r)
	if err != nil || s == nil {
		return page, err
	}
	p := h.oidc.provider(s.Provider)
	switch {
	case p != nil && s.AuthMethod == session.MethodOIDC(s.Provider):
		page.Providers = []providerButton{{Label: p.cfg.label(), URL: h.providerStepUp(p.cfg.Name, next)}}
	case s.Provider == "" && (s.AuthMethod == session.MethodPassword || s.AuthMethod == session.MethodPasswordTOTP) &&
		h.SignIn.accounts[s.UserID] != nil:
		page.Accounts, page.User = true, s.UserID
	default:
		return page, nil
	}
	page.StepUp, page.Who = true, orDefault(s.Name, s.UserID)
	page.SwitchURL = h.Endpoints + "/sign-in?next=" + url.QueryEscape(next)
	return page, nil
}

// accountSignIn checks the accounts form: login_rate, cross-site, CSRF,
// then the password (and the code).
func (h *Handler) accountSignIn(w http.ResponseWriter, r *http.Request) error {
	if crossSite(r) {
		return answer(w, r, problemCrossSite)
	}
	if err := h.rateLimit(r, limitLogin, clientKey(clientIP(r)), "", h.LoginRate); err != nil {
		return h.refuse(w, r, err)
	}
	if len(h.SignIn.accounts) == 0 {
		return answer(w, r, problemNoAccounts)
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxSignInForm)
	if err := r.ParseForm(); err != nil {
		return answer(w, r, problemBadForm)
	}
	if !h.validFormToken(r) {
		return answer(w, r, problemFormExpired)
	}
	next := h.signInNext(r.PostFormValue("next"))
	page := signInPage{Next: next}
	if r.PostFormValue("step_up") == "1" {
		// The step-up page again for its errors and code step; whether
		// the session is kept is finishSignIn's decision.
		sp, err := h.stepUpPage(r, next)
		if err != nil {
			return h.refuse(w, r, err)
		}
		if sp.StepUp && sp.Accounts {
			page = sp
		}
	}

	var acct *Account
	codeTries := 0 // wrong codes already given after this password
	if pending := r.PostFormValue("pending"); pending != "" {
		// The code step: the password was checked a moment ago.
		ctx := r.Context()
		v, err := h.store.Take(ctx, "account:"+pending, h.now())
		if errors.Is(err, session.ErrNotFound) {
			page.Error = stepExpired
			return h.renderSignIn(w, r, http.StatusUnauthorized, page)
		}
		if err != nil {
			return h.refuse(w, r, err)
		}
		user, rest, _ := strings.Cut(string(v), "\x00")
		tried, binding, _ := strings.Cut(rest, "\x00")
		if binding == "" || subtle.ConstantTimeCompare([]byte(binding), []byte(h.formBinding(r))) != 1 {
			// Another browser's step (its pending value seen on a shared
			// screen, in a log): taken above, so gone for both.
			page.Error = stepExpired
			return h.renderSignIn(w, r, http.StatusUnauthorized, page)
		}
		codeTries, _ = strconv.Atoi(tried)
		if acct = h.SignIn.accounts[user]; acct == nil || acct.TOTP == "" {
			page.Error = wrongCredentials
			return h.renderSignIn(w, r, http.StatusUnauthorized, page)
		}
		if page.StepUp && acct.User != page.User {
			page = signInPage{Next: next} // another user: a plain sign-in
		}
	} else {
		user := userIDOf(r.PostFormValue("username"))
		acct = h.SignIn.accounts[user]
		if !h.passwordMatches(user, acct, r.PostFormValue("password")) {
			if acct != nil {
				h.loginFailed(r, acct.User, "password")
			} else {
				h.loginFailed(r, "", "password")
			}
			page.Error = wrongCredentials
			if page.StepUp {
				page.Error = wrongPassword
			} else {
				page.Typed = sanitise(r.PostFormValue("username"), maxTypedName)
			}
			return h.renderSignIn(w, r, http.StatusUnauthorized, page)
		}
		if page.StepUp && acct.User != page.User {
			page = signInPage{Next: next} // another user: a plain sign-in
		}
		if acct.TOTP != "" && r.PostFormValue("code") == "" {
			return h.askCode(w, r, acct, page, http.StatusOK, 0)
		}
	}

	method := session.MethodPassword
	if acct.TOTP != "" {
		settle, err := h.spendProof(r, codeLimit, acct.User)
		if err != nil {
			return h.codesLocked(w, r, page, err)
		}
		reason := h.checkCode(r, acct, r.PostFormValue("code"))
		settle(reason == "")
		if reason != "" {
			h.loginFailed(r, acct.User, "totp")
			page.Error = reason
			if codeTries+1 < maxCodeTries {
				// The password was right: ask for the code again, on a
				// new one-use step, a few times before the password.
				return h.askCode(w, r, acct, page, http.StatusUnauthorized, codeTries+1)
			}
			page.Error += " Enter your user name and password again."
			if !page.StepUp {
				page.Typed = acct.User
			}
			return h.renderSignIn(w, r, http.StatusUnauthorized, page)
		}
		method = session.MethodPasswordTOTP
	}
	who := signedIn{userID: acct.User, email: acct.Email, name: acct.Name, roles: strings.Join(acct.Roles, ","), method: method}
	return h.finishSignIn(w, r, who, stepUpOf{on: page.StepUp}, func() error {
		w.Header().Set("Location", next)
		w.WriteHeader(http.StatusSeeOther)
		return nil
	})
}

// passwordMatches compares password with the account's hash; an
// unknown name's is compared with the dummy unknownHash picks for it, so
// that both answers cost the same.
func (h *Handler) passwordMatches(name string, acct *Account, password string) bool {
	hash := h.unknownHash(name)
	if acct != nil {
		hash = []byte(acct.Hash)
	}
	compare := h.compare
	if compare == nil {
		compare = comparePassword
	}
	ok := compare(hash, password)
	return ok && acct != nil
}

// codesLocked answers a code step refused because the account's wrong
// codes reached codeLimit (from anywhere): the sign-in page saying so,
// 429 with Retry-After. Any other error is the store's.
func (h *Handler) codesLocked(w http.ResponseWriter, r *http.Request, page signInPage, err error) error {
	var rl errRateLimited
	if !errors.As(err, &rl) {
		return h.refuse(w, r, err)
	}
	mins := int((rl.retry + time.Minute - 1) / time.Minute)
	w.Header().Set("Retry-After", strconv.Itoa(max(int((rl.retry+time.Second-1)/time.Second), 1)))
	page.Pending = ""
	page.Error = "Too many wrong codes were entered for this account, so it cannot sign in with a code for now. Try again in " +
		strconv.Itoa(max(mins, 1)) + " minutes."
	if mins <= 1 {
		page.Error = strings.Replace(page.Error, "minutes", "minute", 1)
	}
	return h.renderSignIn(w, r, http.StatusTooManyRequests, page)
}

// maxCodeTries is how many codes one right password may be followed by
// before the password is asked again (each also counts in login_rate).
const maxCodeTries = 3

// askCode keeps the password step for codeStepTTL, one use, with the
// wrong codes given so far and the browser it belongs to (formBinding),
// and shows the code field.
func (h *Handler) askCode(w http.ResponseWriter, r *http.Request, acct *Account, page signInPage, status, tries int) error {
	var b [16]byte
	_, _ = rand.Read(b[:])
	pending := hex.EncodeToString(b[:])
	ctx := r.Context()
	v := acct.User + "\x00" + strconv.Itoa(tries) + "\x00" + h.formBinding(r)
	err := h.store.Stash(ctx, "account:"+pending, []byte(v), codeStepTTL, h.now())
	if err != nil {
		return h.refuse(w, r, err)
	}
	page.Pending, page.User = pending, acct.User
	return h.renderSignIn(w, r, status, page)
}

// checkCode checks a TOTP code (this 30 s step or a neighbour, for clock
// drift) and refuses a code already used: each step is used once, which
// the store remembers while a code of it could still be valid. It
// returns what to tell the user, or "" when the code is good.
func (h *Handler) checkCode(r *http.Request, acct *Account, code string) string {
	// As authenticator apps show it: "123 456" or "123-456".
	code = strings.NewReplacer(" ", "", "-", "", "\t", "").Replace(code)
	now := h.now()
	if len(code) != 6 {
		return "Wrong code. Enter the 6 digits your authenticator app shows now."
	}
	for _, off := range []int{0, -1, 1} {
		at := now.Add(time.Duration(off) * 30 * time.Second)
		want, err := totp.GenerateCodeCustom(acct.TOTP, at, totpOpts)
		if err != nil || subtle.ConstantTimeCompare([]byte(want), []byte(code)) != 1 {
			continue
		}
		step := at.Unix() / 30
		ctx := r.Context()
		n, _, err := h.store.Hit(ctx, "totp:"+acct.User+":"+strconv.FormatInt(step, 10), 3*30*time.Second, now)
		if err != nil || n > 1 {
			return "That code was used already. Wait for the next one."
		}
		return ""
	}
	return "Wrong code. Enter the 6 digits your authenticator app shows now."
}

// loginFailed logs and records a refused sign-in (never the password or
// code); userID is empty when the account does not exist.
func (h *Handler) loginFailed(r *http.Request, userID, reason string) {
	e := session.Event{Type: session.EventLoginFailed, At: h.now().UTC(), UserID: userID, IP: clientIP(r), Reason: reason}
	h.logEvent(e)
	ctx := r.Context()
	if err := h.store.Record(ctx, e, h.policy); err != nil {
		h.logger.Error("recording a failed sign-in", zap.Error(err))
	}
}

// mintFailed answers a sign-in the store could not complete, or one the
// limits refused, as the hand-off does.
func (h *Handler) mintFailed(w http.ResponseWriter, r *http.Request, err error) error {
	switch {
	case errors.Is(err, session.ErrLimitReached):
		return answer(w, r, problemTooManySessions)
	case errors.As(err, new(errRateLimited)):
		return tooMany(w, r, err)
	}
	h.metrics.request(outcomeStoreError)
	return h.storeUnavailable(w, r, err)
}
