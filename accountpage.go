package sessionauth

import (
	"context"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/sessionauth/caddy-sessionauth/accounts"
	"github.com/sessionauth/caddy-sessionauth/email"
	"github.com/sessionauth/caddy-sessionauth/session"
)

// The account page (SPEC 15): {endpoints}/account shows the signed-in
// person's sign-in methods, and its forms change them.
const (
	// accountFresh: every change needs a sign-in or step-up this recent.
	accountFresh = 10 * time.Minute
	// totpEnrolTTL is how long an authenticator app being added waits
	// for its first code.
	totpEnrolTTL   = 10 * time.Minute
	maxTOTPTries   = 5 // wrong first codes before the enrolment starts again
	maxAccountForm = 16 << 10
)

// The account changes' audit events and mails.
const (
	eventPasswordChanged  = "password_changed"
	eventTOTPAdded        = "totp_added"
	eventTOTPRemoved      = "totp_removed"
	eventRecoveryCodes    = "recovery_codes_made"
	eventRecoveryCodeUsed = "recovery_code_used"
)

// methodPasswordRecovery: the password, then a recovery code in place of
// the second factor (X-Auth-Method).
const methodPasswordRecovery = "password+recovery"

// accountMethod: a session an account signed in (password, then maybe a
// second factor; or a passkey), which the account page and a step-up with
// the accounts form or a passkey may confirm.
func accountMethod(m string) bool {
	switch m {
	case session.MethodPassword, session.MethodPasswordTOTP, methodPasswordRecovery, methodPasskey, methodPasswordPasskey:
		return true
	}
	return false
}

// passwordLimit bounds wrong current passwords on the account page, per
// account, as codeLimit bounds wrong codes.
var passwordLimit = proofLimit{reason: "password", count: 10, window: 15 * time.Minute}

// accountPages is the account page's part: nil without sign_in.
type accountPages struct {
	endpoints, baseURL string
	dir                *accounts.Directory
	// secondFactorRequired: `second_factor required` (SPEC 15); then the
	// last second factor cannot be removed.
	secondFactorRequired bool
	store                session.Store
	policy               session.Policy
	now                  func() time.Time
	notifier             *notifier
	logger               *zap.Logger
	host                 accountHost

	// passkeysOn: sign_in has passkeys; the page links to the passkeys page.
	passkeysOn bool
}

// accountHost is what the account page takes from the handler.
type accountHost interface {
	requireSession(w http.ResponseWriter, r *http.Request) (*session.Session, error)
	storeUnavailable(w http.ResponseWriter, r *http.Request, err error) error
	refuse(w http.ResponseWriter, r *http.Request, err error) error
	sessionsEnded(ended []*session.Session, e ending)
	spendProof(r *http.Request, l proofLimit, userID string) (settle func(right bool), err error)
	logEvent(e session.Event)
}

func newAccountPages(h *Handler) *accountPages {
	if h.signIn == nil {
		return nil
	}
	return &accountPages{endpoints: h.Endpoints, baseURL: h.BaseURL, dir: h.signIn.local.dir,
		secondFactorRequired: h.SignIn.SecondFactor == secondFactorRequired,
		store:                h.store, policy: h.policy, now: h.now, notifier: h.notifier, logger: h.logger, host: h,
		passkeysOn: h.SignIn.Passkeys != nil}
}

// storeAccounts is the accounts part of st (the handler's Timed has it).
func storeAccounts(st session.Store) (session.Accounts, error) {
	if a, ok := session.As[session.Accounts](st); ok {
		return a, nil
	}
	return nil, session.ErrNoAccounts
}

// accountOf is the account a session belongs to: the operator's (from
// the Caddyfile) and/or its record in the store.
type accountOf struct {
	user  string
	op    accounts.Account
	hasOp bool
	rec   *session.Account // nil: no record
}

func (a accountOf) stored() bool { return a.rec != nil && a.rec.Stored }

// operatorTOTP: the Caddyfile gives the account its TOTP, which stays
// the operator's.
func (a accountOf) operatorTOTP() bool { return a.hasOp && a.op.TOTP != "" }

func (a accountOf) totp() bool { return a.operatorTOTP() || (a.rec != nil && a.rec.TOTPSecret != "") }

func (a accountOf) passkeys() int {
	if a.rec == nil {
		return 0
	}
	return len(a.rec.Passkeys)
}

func (a accountOf) recoveryLeft() int {
	n := 0
	if a.rec != nil {
		for _, h := range a.rec.RecoveryCodes {
			if h != "" {
				n++
			}
		}
	}
	return n
}

func (a accountOf) email() string {
	if a.stored() {
		return a.rec.Email
	}
	return a.op.Email
}

// accountRecord is userID's record in st, nil when it has none.
func accountRecord(ctx context.Context, st session.Store, userID string) (*session.Account, error) {
	accts, err := storeAccounts(st)
	if err != nil {
		return nil, err
	}
	rec, err := accts.GetAccount(ctx, userID)
	if errors.Is(err, session.ErrNotFound) {
		return nil, nil
	}
	return rec, err
}

// load is the account of cur: found is false for a session no account
// signed in (a hand-off's, a provider's, an API token), and for a
// disabled or removed account.
func (p *accountPages) load(ctx context.Context, cur *session.Session) (a accountOf, found bool, err error) {
	if cur.IsToken() || cur.Provider != "" || !accountMethod(cur.AuthMethod) {
		return a, false, nil
	}
	a.user = cur.UserID
	a.op, a.hasOp = p.dir.Lookup(cur.UserID)
	if a.rec, err = accountRecord(ctx, p.store, cur.UserID); err != nil {
		return a, false, err
	}
	if a.rec != nil && a.rec.Disabled {
		return a, false, nil
	}
	return a, a.hasOp || a.stored(), nil
}

// update changes the account's record with fn, atomically; an operator's
// account without one gets it (Stored false: it holds only what its
// person added).
func (p *accountPages) update(ctx context.Context, a accountOf, fn func(*session.Account) error) (*session.Account, error) {
	accts, err := storeAccounts(p.store)
	if err != nil {
		return nil, err
	}
	for range 2 {
		rec, err := accts.UpdateAccount(ctx, a.user, func(r *session.Account) error {
			if !r.Stored && !a.hasOp || r.Disabled {
				return session.ErrNotFound // removed from the Caddyfile, or disabled, meanwhile
			}
			return fn(r)
		})
		if !errors.Is(err, session.ErrNotFound) || !a.hasOp || a.stored() {
			return rec, err
		}
		n := &session.Account{UserID: a.user, CreatedAt: p.now().UTC()}
		if err := fn(n); err != nil {
			return nil, err
		}
		if err = accts.CreateAccount(ctx, n); !errors.Is(err, session.ErrAccountExists) {
			return n, err
		}
		// Created meanwhile (another tab, another gateway): update it.
	}
	return nil, session.ErrAccountBusy
}

// accountJSON is the account as SPEC 15 lists it, the fields that apply.
type accountJSON struct {
	UserID         string   `json:"user_id"`
	Email          string   `json:"email,omitempty"`
	Name           string   `json:"name,omitempty"`
	Roles          []string `json:"roles,omitempty"`
	Password       bool     `json:"password"`
	TOTP           bool     `json:"totp"`
	Passkeys       int      `json:"passkeys"`
	RecoveryCodes  int      `json:"recovery_codes_left"`
	Disabled       bool     `json:"disabled"`
	CreatedAt      string   `json:"created_at,omitempty"`
	LastSignInAt   string   `json:"last_sign_in_at,omitempty"`
	recoveryChosen bool
}

func (a accountOf) json() accountJSON {
	out := accountJSON{UserID: a.user, Email: a.op.Email, Name: a.op.Name, Roles: a.op.Roles, Password: a.hasOp,
		TOTP: a.totp(), Passkeys: a.passkeys(), RecoveryCodes: a.recoveryLeft()}
	if a.stored() {
		out.Email, out.Name, out.Roles, out.Password = a.rec.Email, a.rec.Name, a.rec.Roles, a.rec.PasswordHash != ""
		out.CreatedAt = rfc3339(a.rec.CreatedAt)
		if !a.rec.LastSignInAt.IsZero() {
			out.LastSignInAt = rfc3339(a.rec.LastSignInAt)
		}
	}
	out.recoveryChosen = a.rec != nil && len(a.rec.RecoveryCodes) > 0
	return out
}

// accountPageData is what the account page shows.
type accountPageData struct {
	Site, Endpoints, CSRF, Name string
	Account                     accountJSON
	// What a person may change here.
	PasswordOwn, TOTPOwn bool
	// TOTPRemovable: false while second_factor required leaves no other.
	TOTPRemovable bool
	RecoveryMade  bool
	// StaleFor: the session signed in longer ago than accountFresh; a
	// change asks for a step-up first.
	StaleFor string
	Notice   string
	Error    string

	// PasskeysOn: the passkeys page exists (sign_in passkeys); linked here.
	PasskeysOn bool
}

// Notices after a change, by ?done=.
var accountNotices = map[string]string{
	eventPasswordChanged: "Your password was changed. Your other sessions were signed out.",
	eventTOTPAdded:       "Your authenticator app was added. Signing in now asks for its code.",
	eventTOTPRemoved:     "Your authenticator app was removed.",
}

// show answers GET {endpoints}/account.
func (p *accountPages) show(w http.ResponseWriter, r *http.Request) error {
	cur, err := p.host.requireSession(w, r)
	if cur == nil {
		return err
	}
	a, found, err := p.load(r.Context(), cur)
	if err != nil {
		return p.host.storeUnavailable(w, r, err)
	}
	if !found {
		return answerWithWay(w, r, problemNoAccount, &wayOn{p.endpoints + "/sessions", "Back to where you're signed in"})
	}
	w.Header().Set("X-CSRF-Token", csrfToken(cur)) // for JSON clients' POSTs
	if wantsJSON(r) {
		return writeJSON(w, http.StatusOK, a.json())
	}
	return p.render(w, r, cur, a, http.StatusOK, accountNotices[r.URL.Query().Get("done")], "")
}

func (p *accountPages) render(w http.ResponseWriter, r *http.Request, cur *session.Session, a accountOf, status int, notice, problem string) error {
	data := accountPageData{Site: siteLabel(p.baseURL, r), Endpoints: p.endpoints, CSRF: csrfToken(cur),
		Name: orDefault(cur.Name, cur.UserID), Account: a.json(), PasswordOwn: a.stored(),
		TOTPOwn: !a.operatorTOTP(), TOTPRemovable: p.totpRemovable(a), Notice: notice, Error: problem}
	data.RecoveryMade, data.PasskeysOn = data.Account.recoveryChosen, p.passkeysOn
	if p.now().Sub(cur.AuthenticatedOrCreated()) > accountFresh {
		data.StaleFor = humanDuration(accountFresh)
	}
	htmlHeaders(w)
	w.Header().Set("Referrer-Policy", "same-origin") // the forms must carry this origin (see renderSessions)
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return nil
	}
	return renderPage(w, pageAccount, data)
}

// totpRemovable: the account's own TOTP may go; under second_factor
// required only while a passkey stays.
func (p *accountPages) totpRemovable(a accountOf) bool {
	return !a.operatorTOTP() && (!p.secondFactorRequired || a.passkeys() > 0)
}

var (
	problemNoAccount = problem{http.StatusNotFound, "no_account", "No account to manage here",
		"You signed in another way than with an account of this site (a provider, or the site's own sign-in), so there are no sign-in methods to manage here."}
	problemTokenAccount = problem{http.StatusForbidden, "token_cannot_change_account", "Account changes are made in a browser",
		"An access token cannot change the account's sign-in methods. Sign in with your browser and use the account page."}
	problemAccountStale = problem{http.StatusForbidden, "step_up_required", "Sign in again to change your account",
		"Changes to how you sign in are made only within 10 minutes of signing in. Sign in again, then make the change."}
)

// change is what every form does first: same-origin, the session, its
// CSRF token, an account, a recent proof. done reports that it answered.
func (p *accountPages) change(w http.ResponseWriter, r *http.Request) (cur *session.Session, a accountOf, done bool, err error) {
	if crossSite(r) {
		return nil, a, true, answer(w, r, problemCrossSite)
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxAccountForm)
	if err := r.ParseForm(); err != nil {
		return nil, a, true, answer(w, r, problemBadForm)
	}
	if cur, err = p.host.requireSession(w, r); cur == nil {
		return nil, a, true, err
	}
	if cur.IsToken() {
		return nil, a, true, answer(w, r, problemTokenAccount)
	}
	if !validCSRF(r, cur) {
		return nil, a, true, answer(w, r, problemFormExpired)
	}
	a, found, err := p.load(r.Context(), cur)
	if err != nil {
		return nil, a, true, p.host.storeUnavailable(w, r, err)
	}
	if !found {
		return nil, a, true, answer(w, r, problemNoAccount)
	}
	if p.now().Sub(cur.AuthenticatedOrCreated()) > accountFresh {
		if wantsPage(r) {
			w.Header().Set("Location", p.endpoints+"/sign-in?step_up=1&next="+url.QueryEscape(p.endpoints+"/account"))
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusSeeOther)
			return nil, a, true, nil
		}
		return nil, a, true, answer(w, r, problemAccountStale)
	}
	return cur, a, false, nil
}

// changed records and tells of a change: the audit event, the mail, and
// the answer (the page again with a notice, or the account as JSON).
func (p *accountPages) changed(w http.ResponseWriter, r *http.Request, cur *session.Session, a accountOf, event string) error {
	now := p.now()
	e := eventOf(cur, event, now, "")
	e.IP, e.Actor = clientIP(r), session.ActorSelf
	p.record(r, e)
	p.notifier.accountChanged(r, event, cur, a.email(), now)
	if !wantsPage(r) {
		return writeJSON(w, http.StatusOK, a.json())
	}
	w.Header().Set("Location", p.endpoints+"/account?done="+event)
	w.WriteHeader(http.StatusSeeOther)
	return nil
}

// record logs and stores an account's audit event.
func (p *accountPages) record(r *http.Request, e session.Event) {
	p.host.logEvent(e)
	if err := p.store.Record(r.Context(), e, p.policy); err != nil {
		p.logger.Error("recording an account change", zap.String("event", e.Type), zap.Error(err))
	}
}

// refusedChange answers a form the account page refuses: the page with
// the reason for a browser, {"error": code} otherwise.
func (p *accountPages) refusedChange(w http.ResponseWriter, r *http.Request, cur *session.Session, a accountOf, status int, code, why string) error {
	if !wantsPage(r) {
		return writeJSON(w, status, errorBody{code})
	}
	return p.render(w, r, cur, a, status, "", why)
}

// accountChanged mails the account's address about event (SPEC 15),
// whichever events notify email lists for sign-ins; with adds what the
// event's mail names besides (a passkey's name).
func (n *notifier) accountChanged(r *http.Request, event string, s *session.Session, to string, at time.Time, with ...func(*session.Notice)) {
	if n == nil || n.mail == nil {
		return
	}
	if to == "" {
		to = s.Email
	}
	if !email.ValidAddress(to) {
		return
	}
	notice := session.Notice{
		Event: event, Events: []string{event}, At: at.UTC(), UserID: s.UserID, SessionID: s.ID,
		DeviceName: s.Device, Browser: s.Browser, OS: s.OS, IP: clientIP(r), Country: s.Country, City: s.City,
		Email: to, Name: s.Name,
	}
	base := n.baseURL
	if base == "" {
		base = n.links.linkBase(r)
	}
	if base != "" {
		notice.RevokeURL = base + n.endpoints + "/revoke?token=" + n.links.linkToken(s)
		notice.SessionsURL = base + n.endpoints + "/sessions"
	}
	for _, f := range with {
		f(&notice)
	}
	if err := n.store.Enqueue(context.Background(), mailTarget, notice); err != nil {
		n.metrics.notification("dropped")
		n.logger.Error("queueing an account change mail", zap.String("event", event), zap.Error(err))
	}
}

// otpauthLink is an enrolment's otpauth URI for a link; anything else
// (never made by NewTOTPEnrolment) is no link.
func otpauthLink(uri string) template.URL {
	if !strings.HasPrefix(uri, "otpauth://totp/") {
		return "#"
	}
	return template.URL(uri) //nolint:gosec // made by pquerna/otp, its parts query-escaped
}

// qrHTML is an enrolment's QR code, which NewTOTPEnrolment draws from
// rectangles alone (no text of the account's), for the page as it is.
func qrHTML(e accounts.TOTPEnrolment) template.HTML {
	return template.HTML(e.QR) //nolint:gosec // the accounts package's own SVG, no user text
}
