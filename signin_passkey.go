package sessionauth

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/sessionauth/caddy-sessionauth/accounts"
	"github.com/sessionauth/caddy-sessionauth/session"
)

// PasskeysConfig turns passkeys (WebAuthn, SPEC 15) on for every
// account: sign-in without a user name, a second factor after a
// password, step-up, and the passkeys page.
type PasskeysConfig struct {
	// The domain passkeys are bound to; default the site's host (base_url's
	// host, else the request's).
	RPID string `json:"rp_id,omitempty"`
	// required or preferred (default).
	UserVerification string `json:"user_verification,omitempty"`
}

// parsePasskeys reads `passkeys { rp_id <domain>; user_verification required|preferred }`.
func parsePasskeys(d *caddyfile.Dispenser) (*PasskeysConfig, error) {
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	pk := &PasskeysConfig{}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if seen[opt] {
			return nil, d.Errf("passkeys: %s given more than once", opt)
		}
		seen[opt] = true
		switch opt {
		case "rp_id":
			if err := stringArg(d, &pk.RPID); err != nil {
				return nil, err
			}
		case "user_verification":
			if err := stringArg(d, &pk.UserVerification); err != nil {
				return nil, err
			}
		default:
			return nil, d.Errf("passkeys: unknown subdirective %q", opt)
		}
	}
	if err := pk.check(); err != nil {
		return nil, d.Errf("passkeys: %v", err)
	}
	return pk, nil
}

func (pk *PasskeysConfig) check() error {
	switch pk.UserVerification {
	case "", "required", "preferred":
	default:
		return errors.New("user_verification must be required or preferred")
	}
	if pk.RPID != "" && (!validHost.MatchString(pk.RPID) || strings.Contains(pk.RPID, ":") || net.ParseIP(pk.RPID) != nil) {
		return errors.New("rp_id must be a domain name (no scheme, port or IP address)")
	}
	return nil
}

// methodPasskey: a passkey sign-in with user verification, as
// X-Auth-Method says it.
const methodPasskey = "passkey"

// methodPasswordPasskey: a password, then a passkey as the second step.
const methodPasswordPasskey = "password+passkey"

// Audit events of the passkeys page.
const (
	eventPasskeyAdded   = "passkey_added"
	eventPasskeyRemoved = "passkey_removed"
)

const (
	// passkeyFresh: adding or removing a passkey needs a sign-in or a
	// step-up this recent (SPEC 15).
	passkeyFresh = 10 * time.Minute
	// passkeyCookieSuffix names the cookie that binds a sign-in ceremony's
	// state (kept in the store) to the browser that began it.
	passkeyCookieSuffix = "_passkey"
	maxPasskeyName      = 100
)

// passkeySignIn is the passkeys part: its ceremonies' endpoints and the
// passkeys page. Nil when sign_in has no passkeys block.
type passkeySignIn struct {
	cfg PasskeysConfig
	h   *Handler
}

func newPasskeySignIn(h *Handler) *passkeySignIn {
	if h.SignIn == nil || h.SignIn.Passkeys == nil || h.signIn == nil {
		return nil
	}
	return &passkeySignIn{cfg: *h.SignIn.Passkeys, h: h}
}

// relyingParty is the site as the ceremonies of r see it: base_url's
// origin when set, else the request's own; the rp_id as configured, else
// that origin's host.
func (p *passkeySignIn) relyingParty(r *http.Request) (*accounts.Passkeys, error) {
	origin, host := "", ""
	if u, err := url.Parse(p.h.BaseURL); err == nil && p.h.BaseURL != "" {
		origin, host = u.Scheme+"://"+u.Host, u.Hostname()
	} else {
		if !validHost.MatchString(r.Host) {
			return nil, errors.New("no valid Host")
		}
		origin = requestScheme(r) + "://" + r.Host
		host = r.Host
		if h, _, err := net.SplitHostPort(r.Host); err == nil {
			host = h
		}
	}
	rpID := p.cfg.RPID
	if rpID == "" {
		rpID = host
	}
	return accounts.NewPasskeys(accounts.PasskeyConfig{
		RPID: rpID, RPName: siteLabel(p.h.BaseURL, r), Origins: []string{origin}, UserVerification: p.cfg.UserVerification,
	}, liveLedger(func() session.Store { return p.h.store }))
}

// accountsPartOf is the accounts part of st (the Timed store has it).
func accountsPartOf(st session.Store) (session.Accounts, error) {
	if a, ok := session.As[session.Accounts](st); ok {
		return a, nil
	}
	return nil, session.ErrNoAccounts
}

// person is who an account's record signs in as: the stored account's
// fields, or the operator's account of that id; false when there is
// none (removed from the Caddyfile) or it is disabled.
func (p *passkeySignIn) person(rec *session.Account) (signedIn, bool) {
	if rec.Disabled {
		return signedIn{}, false
	}
	if rec.Stored {
		return signedIn{userID: rec.UserID, email: rec.Email, name: rec.Name, roles: strings.Join(rec.Roles, ",")}, true
	}
	a, ok := p.h.signIn.local.dir.Lookup(rec.UserID)
	if !ok {
		return signedIn{}, false
	}
	return signedIn{userID: a.User, email: a.Email, name: a.Name, roles: strings.Join(a.Roles, ",")}, true
}

// accountSession reports whether s is an account's browser session
// (password, code or passkey), whose person may manage passkeys.
func accountSession(s *session.Session) bool {
	if s.Provider != "" || s.IsToken() {
		return false
	}
	switch s.AuthMethod {
	case session.MethodHandoff, session.MethodAdmin, session.MethodToken, "":
		return false
	}
	return true
}

// record is the store's record of the signed-in account, made on first
// need for an operator's account; nil, nil when the session is no
// account's.
func (p *passkeySignIn) record(ctx context.Context, s *session.Session) (*session.Account, error) {
	if !accountSession(s) {
		return nil, nil
	}
	st, err := accountsPartOf(p.h.store)
	if err != nil {
		return nil, err
	}
	rec, err := st.GetAccount(ctx, s.UserID)
	if err == nil {
		if _, ok := p.person(rec); !ok {
			return nil, nil
		}
		return rec, nil
	}
	if !errors.Is(err, session.ErrNotFound) {
		return nil, err
	}
	if _, ok := p.h.signIn.local.dir.Lookup(s.UserID); !ok {
		return nil, nil
	}
	rec = &session.Account{UserID: s.UserID, CreatedAt: p.h.now().UTC()}
	if err := st.CreateAccount(ctx, rec); err != nil {
		if errors.Is(err, session.ErrAccountExists) {
			return st.GetAccount(ctx, s.UserID) // made meanwhile
		}
		return nil, err
	}
	return rec, nil
}

// passkeyUser is an account as the ceremonies see it.
func passkeyUser(rec *session.Account) accounts.PasskeyUser {
	u := accounts.PasskeyUser{Handle: rec.Handle, Name: orDefault(rec.Email, rec.UserID), DisplayName: orDefault(rec.Name, rec.UserID)}
	for _, k := range rec.Passkeys {
		u.Passkeys = append(u.Passkeys, accounts.PasskeyCredential{
			ID: k.ID, PublicKey: k.PublicKey, SignCount: k.SignCount, AAGUID: k.AAGUID, Transports: k.Transports,
			UserPresent: k.UserPresent, UserVerified: k.UserVerified, BackupEligible: k.BackupEligible, BackupState: k.BackupState,
		})
	}
	return u
}

// used stores what a verified assertion says of c: its sign count, its
// flags and when it was used.
func usedPasskey(a *session.Account, c accounts.PasskeyCredential, now time.Time) {
	for i, k := range a.Passkeys {
		if bytes.Equal(k.ID, c.ID) {
			k.SignCount, k.LastUsedAt = c.SignCount, now
			k.UserPresent, k.UserVerified, k.BackupEligible, k.BackupState = c.UserPresent, c.UserVerified, c.BackupEligible, c.BackupState
			a.Passkeys[i] = k
		}
	}
}

// passkeyAnswer is a refused ceremony's JSON: a code and words for the
// person, which the script shows.
type passkeyAnswer struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

func passkeyRefused(w http.ResponseWriter, status int, code, msg string) error {
	return writeJSON(w, status, passkeyAnswer{code, msg})
}

const (
	msgPasskeyTryAgain = "That passkey sign-in expired or was used already. Try again."
	msgPasskeyWrong    = "That passkey was not accepted. Try again, or use another way to sign in."
	msgPasskeyNoUV     = "Your passkey did not check that it's you (with a PIN, fingerprint or face), so it cannot sign you in on its own. Sign in with your password; the passkey can then be the second step."
	msgPasskeyCloned   = "This passkey was refused: it looks like a copy of your security key may exist. Use another way to sign in and remove this passkey."
	msgPasskeyLocked   = "Too many wrong sign-in attempts were made for this account. Try again later."
)

// checkForm checks a ceremony's POST from the sign-in page: same origin
// and the sign-in form's CSRF token in X-CSRF-Token.
func (p *passkeySignIn) checkForm(w http.ResponseWriter, r *http.Request) bool {
	if crossSite(r) {
		_ = writeJSON(w, http.StatusForbidden, errorBody{"cross_site_request"})
		return false
	}
	c, err := r.Cookie(p.h.signIn.formCookieName(r))
	if err != nil || !validDeviceID(c.Value) || !hmac.Equal([]byte(c.Value), []byte(r.Header.Get("X-CSRF-Token"))) {
		_ = writeJSON(w, http.StatusForbidden, errorBody{"csrf"})
		return false
	}
	return true
}

func (p *passkeySignIn) ceremonyCookie(r *http.Request, value string, maxAge time.Duration) *http.Cookie {
	c := p.h.cookies.sessionCookie(r, value, maxAge)
	c.Name = p.h.cookies.cookieName(r) + passkeyCookieSuffix
	return c
}

// loginBegin starts a sign-in (or step-up) with a passkey and no user
// name: the options, and the state kept in the store under a random id
// that a short-lived cookie holds.
func (p *passkeySignIn) loginBegin(w http.ResponseWriter, r *http.Request) error {
	if !p.checkForm(w, r) {
		return nil
	}
	// login_rate counts each ceremony once, here: a finish needs a state
	// of its own, used once.
	if err := p.h.rateLimit(r, limitLogin, clientKey(clientIP(r)), "", p.h.LoginRate); err != nil {
		return p.h.refuse(w, r, err)
	}
	rp, err := p.relyingParty(r)
	if err != nil {
		return writeJSON(w, http.StatusBadRequest, errorBody{"bad_request"})
	}
	options, state, err := rp.BeginDiscoverableLogin()
	if err != nil {
		return err
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	ctx := r.Context()
	if err := p.h.store.Stash(ctx, "pkstate:"+id, state, accounts.PasskeyCeremonyTimeout, p.h.now()); err != nil {
		return p.h.storeUnavailable(w, r, err)
	}
	http.SetCookie(w, p.ceremonyCookie(r, id, accounts.PasskeyCeremonyTimeout))
	return writeRawJSON(w, http.StatusOK, options)
}

// loginFinish checks the browser's answer to loginBegin's options and
// signs the account in (or steps its session up): with user verification
// only, as a passkey without it proves the key and not the person.
func (p *passkeySignIn) loginFinish(w http.ResponseWriter, r *http.Request) error {
	if !p.checkForm(w, r) {
		return nil
	}
	h := p.h
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err != nil {
		return passkeyRefused(w, http.StatusBadRequest, "bad_request", msgPasskeyWrong)
	}
	ctx := r.Context()
	now := h.now()
	c, cerr := r.Cookie(h.cookies.cookieName(r) + passkeyCookieSuffix)
	http.SetCookie(w, p.ceremonyCookie(r, "", -1))
	if cerr != nil || !validDeviceID(c.Value) {
		return passkeyRefused(w, http.StatusBadRequest, "passkey_expired", msgPasskeyTryAgain)
	}
	state, err := h.store.Take(ctx, "pkstate:"+c.Value, now)
	if errors.Is(err, session.ErrNotFound) {
		return passkeyRefused(w, http.StatusBadRequest, "passkey_expired", msgPasskeyTryAgain)
	}
	if err != nil {
		return h.storeUnavailable(w, r, err)
	}
	st, err := accountsPartOf(h.store)
	if err != nil {
		return h.storeUnavailable(w, r, err)
	}
	rp, err := p.relyingParty(r)
	if err != nil {
		return writeJSON(w, http.StatusBadRequest, errorBody{"bad_request"})
	}
	var (
		rec     *session.Account
		who     signedIn
		settle  func(bool)
		lockErr error
	)
	login, err := rp.FinishDiscoverableLogin(ctx, state, body, func(handle, credID []byte) (accounts.PasskeyUser, error) {
		a, err := st.AccountByHandle(ctx, handle)
		if err != nil {
			return accounts.PasskeyUser{}, err
		}
		var ok bool
		if who, ok = p.person(a); !ok {
			return accounts.PasskeyUser{}, errors.New("the account is disabled or gone")
		}
		rec = a
		// Counted like a code before it is checked (proofs.go).
		if settle, lockErr = h.spendProof(r, codeLimit, a.UserID); lockErr != nil {
			return accounts.PasskeyUser{}, lockErr
		}
		return passkeyUser(a), nil
	}, now)
	if settle != nil {
		settle(err == nil)
	}
	user := ""
	if rec != nil {
		user = rec.UserID
	}
	switch {
	case lockErr != nil:
		var rl errRateLimited
		if !errors.As(lockErr, &rl) {
			return h.storeUnavailable(w, r, lockErr)
		}
		return passkeyRefused(w, http.StatusTooManyRequests, "rate_limited", msgPasskeyLocked)
	case errors.Is(err, accounts.ErrPasskeyCloned):
		h.logger.Warn("passkey refused: its sign count went back, the authenticator may be cloned",
			zap.String("user_id", user), zap.String("credential_id", base64.RawURLEncoding.EncodeToString(login.Credential.ID)),
			zap.String("ip_address", clientIP(r)), zap.Error(err))
		h.signIn.loginFailed(r, user, "passkey_cloned")
		if rec != nil {
			_, _ = st.UpdateAccount(ctx, rec.UserID, func(a *session.Account) error {
				for i := range a.Passkeys {
					if bytes.Equal(a.Passkeys[i].ID, login.Credential.ID) {
						a.Passkeys[i].CloneWarning = true
					}
				}
				return nil
			})
		}
		return passkeyRefused(w, http.StatusForbidden, "passkey_cloned", msgPasskeyCloned)
	case errors.Is(err, accounts.ErrPasskeyStateUsed):
		return passkeyRefused(w, http.StatusBadRequest, "passkey_expired", msgPasskeyTryAgain)
	case err != nil:
		h.signIn.loginFailed(r, user, "passkey")
		if c := h.logger.Check(zap.InfoLevel, "passkey sign-in refused"); c != nil {
			c.Write(zap.String("user_id", user), zap.String("ip_address", clientIP(r)), zap.Error(err))
		}
		return passkeyRefused(w, http.StatusBadRequest, "passkey_refused", msgPasskeyWrong)
	case !login.UserVerified:
		h.signIn.loginFailed(r, user, "passkey_unverified")
		return passkeyRefused(w, http.StatusForbidden, "user_verification_required", msgPasskeyNoUV)
	}
	if _, err := st.UpdateAccount(ctx, rec.UserID, func(a *session.Account) error {
		usedPasskey(a, login.Credential, now.UTC())
		a.LastSignInAt = now.UTC()
		return nil
	}); err != nil {
		h.logger.Warn("passkey sign-in: its sign count and last use not stored", zap.String("user_id", rec.UserID), zap.Error(err))
	}
	who.method = methodPasskey
	next := h.ForwardAuth.signInNext(r.URL.Query().Get("next"))
	return h.finishSignIn(w, r, who, stepUpOf{on: r.URL.Query().Get("step_up") == "1"}, func() error {
		return writeJSON(w, http.StatusOK, struct {
			Location string `json:"location"`
		}{next})
	})
}

// signedInAccount is the signed-in account of r for the passkeys page
// and registration: the session and the account's record; nil when the
// answer was written (no session, not an account's).
func (p *passkeySignIn) signedInAccount(w http.ResponseWriter, r *http.Request) (*session.Session, *session.Account, error) {
	cur, err := p.h.requireSession(w, r)
	if cur == nil {
		return nil, nil, err
	}
	rec, err := p.record(r.Context(), cur)
	if err != nil {
		return nil, nil, p.h.storeUnavailable(w, r, err)
	}
	if rec == nil {
		return nil, nil, answer(w, r, problemPasskeysNoAccount)
	}
	return cur, rec, nil
}

var problemPasskeysNoAccount = problem{http.StatusForbidden, "not_an_account", "Passkeys are for accounts",
	"You signed in another way than with an account of this site, so there are no passkeys to manage here."}

// stale reports a session that signed in longer ago than passkeyFresh.
func (p *passkeySignIn) stale(s *session.Session) bool {
	return p.h.now().Sub(s.AuthenticatedOrCreated()) > passkeyFresh
}

func (p *passkeySignIn) stepUpURL() string {
	return p.h.Endpoints + "/sign-in?step_up=1&next=" + url.QueryEscape(p.h.Endpoints+"/account/passkeys")
}

// registerBegin starts adding a passkey to the signed-in account; the
// state is kept under the session's id.
func (p *passkeySignIn) registerBegin(w http.ResponseWriter, r *http.Request) error {
	if crossSite(r) {
		return writeJSON(w, http.StatusForbidden, errorBody{"cross_site_request"})
	}
	cur, rec, err := p.signedInAccount(w, r)
	if cur == nil {
		return err
	}
	if !validCSRF(r, cur) {
		return writeJSON(w, http.StatusForbidden, errorBody{"csrf"})
	}
	if p.stale(cur) {
		return writeJSON(w, http.StatusForbidden, struct {
			Error    string `json:"error"`
			Message  string `json:"message"`
			Location string `json:"location"`
		}{"step_up_required", "Confirm it's you first: adding a passkey needs a sign-in within the last 10 minutes.", p.stepUpURL()})
	}
	rp, err := p.relyingParty(r)
	if err != nil {
		return writeJSON(w, http.StatusBadRequest, errorBody{"bad_request"})
	}
	options, state, err := rp.BeginRegistration(passkeyUser(rec))
	if err != nil {
		return err
	}
	if err := p.h.store.Stash(r.Context(), "pkreg:"+cur.ID, state, accounts.PasskeyCeremonyTimeout, p.h.now()); err != nil {
		return p.h.storeUnavailable(w, r, err)
	}
	return writeRawJSON(w, http.StatusOK, options)
}

// registerFinish checks the browser's new passkey and adds it, named
// after the device (or ?name=).
func (p *passkeySignIn) registerFinish(w http.ResponseWriter, r *http.Request) error {
	if crossSite(r) {
		return writeJSON(w, http.StatusForbidden, errorBody{"cross_site_request"})
	}
	cur, rec, err := p.signedInAccount(w, r)
	if cur == nil {
		return err
	}
	if !validCSRF(r, cur) {
		return writeJSON(w, http.StatusForbidden, errorBody{"csrf"})
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err != nil {
		return passkeyRefused(w, http.StatusBadRequest, "bad_request", "The passkey's answer was too large.")
	}
	ctx := r.Context()
	now := p.h.now()
	state, err := p.h.store.Take(ctx, "pkreg:"+cur.ID, now)
	if errors.Is(err, session.ErrNotFound) {
		return passkeyRefused(w, http.StatusBadRequest, "passkey_expired", "Adding the passkey took too long. Try again.")
	}
	if err != nil {
		return p.h.storeUnavailable(w, r, err)
	}
	if p.stale(cur) {
		return passkeyRefused(w, http.StatusForbidden, "step_up_required", "Confirm it's you first: adding a passkey needs a recent sign-in.")
	}
	rp, err := p.relyingParty(r)
	if err != nil {
		return writeJSON(w, http.StatusBadRequest, errorBody{"bad_request"})
	}
	c, err := rp.FinishRegistration(ctx, passkeyUser(rec), state, body, now)
	if err != nil {
		if c := p.h.logger.Check(zap.InfoLevel, "passkey registration refused"); c != nil {
			c.Write(zap.String("user_id", cur.UserID), zap.Error(err))
		}
		return passkeyRefused(w, http.StatusBadRequest, "passkey_refused", "The passkey was not added. Try again.")
	}
	name := sanitise(strings.TrimSpace(r.URL.Query().Get("name")), maxPasskeyName)
	if name == "" {
		name = passkeyDeviceName(r)
	}
	st, err := accountsPartOf(p.h.store)
	if err != nil {
		return p.h.storeUnavailable(w, r, err)
	}
	_, err = st.UpdateAccount(ctx, rec.UserID, func(a *session.Account) error {
		a.Passkeys = append(a.Passkeys, session.Passkey{
			ID: c.ID, Name: name, PublicKey: c.PublicKey, SignCount: c.SignCount, AAGUID: c.AAGUID, Transports: c.Transports,
			UserPresent: c.UserPresent, UserVerified: c.UserVerified, BackupEligible: c.BackupEligible, BackupState: c.BackupState,
			AddedAt: now.UTC(),
		})
		return nil
	})
	if errors.Is(err, session.ErrAccountExists) {
		return passkeyRefused(w, http.StatusConflict, "passkey_exists", "This passkey belongs to another account already.")
	}
	if err != nil {
		return p.h.storeUnavailable(w, r, err)
	}
	p.audit(r, cur, eventPasskeyAdded, name)
	p.mailPasskey(r, cur, rec, eventPasskeyAdded, name)
	return writeJSON(w, http.StatusCreated, struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}{base64.RawURLEncoding.EncodeToString(c.ID), name})
}

// writeRawJSON writes body, JSON already.
func writeRawJSON(w http.ResponseWriter, status int, body []byte) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, err := w.Write(body)
	return err
}

// hasPasskey reports whether passkeys are on and user's account has one:
// then a passkey may be the second step after the password.
func (p *signInPages) hasPasskey(r *http.Request, user string) (bool, error) {
	if !p.passkeysOn {
		return false, nil
	}
	st, err := accountsPartOf(p.live.store())
	if err != nil {
		return false, err
	}
	a, err := st.GetAccount(r.Context(), user)
	if errors.Is(err, session.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return len(a.Passkeys) > 0 && !a.Disabled, nil
}

// passwordStep takes the password step ?pending= names (signin_accounts.go's
// askCode), if it is this browser's: its user and wrong proofs so far.
func (p *passkeySignIn) passwordStep(r *http.Request) (user string, tries int, ok bool, err error) {
	pending := r.URL.Query().Get("pending")
	if pending == "" || len(pending) > 64 {
		return "", 0, false, nil
	}
	v, err := p.h.store.Take(r.Context(), "account:"+pending, p.h.now())
	if errors.Is(err, session.ErrNotFound) {
		return "", 0, false, nil
	}
	if err != nil {
		return "", 0, false, err
	}
	user, rest, _ := strings.Cut(string(v), "\x00")
	tried, binding, _ := strings.Cut(rest, "\x00")
	if binding == "" || !hmac.Equal([]byte(binding), []byte(p.h.signIn.formBinding(r))) {
		return "", 0, false, nil // another browser's: gone for both
	}
	tries, _ = strconv.Atoi(tried)
	return user, tries, true, nil
}

func (p *passkeySignIn) keepStep(r *http.Request, user string, tries int) error {
	v := user + "\x00" + strconv.Itoa(tries) + "\x00" + p.h.signIn.formBinding(r)
	return p.h.store.Stash(r.Context(), "account:"+r.URL.Query().Get("pending"), []byte(v), codeStepTTL, p.h.now())
}

// secondBegin starts the passkey check after a right password: the
// account's passkeys offered, the state kept beside the password step.
func (p *passkeySignIn) secondBegin(w http.ResponseWriter, r *http.Request) error {
	if !p.checkForm(w, r) {
		return nil
	}
	if err := p.h.rateLimit(r, limitLogin, clientKey(clientIP(r)), "", p.h.LoginRate); err != nil {
		return p.h.refuse(w, r, err)
	}
	user, tries, ok, err := p.passwordStep(r)
	if err != nil {
		return p.h.storeUnavailable(w, r, err)
	}
	if !ok {
		return passkeyRefused(w, http.StatusBadRequest, "passkey_expired", stepExpired)
	}
	if err := p.keepStep(r, user, tries); err != nil {
		return p.h.storeUnavailable(w, r, err)
	}
	st, err := accountsPartOf(p.h.store)
	if err != nil {
		return p.h.storeUnavailable(w, r, err)
	}
	rec, err := st.GetAccount(r.Context(), user)
	if err != nil {
		return passkeyRefused(w, http.StatusBadRequest, "no_passkey", "This account has no passkey.")
	}
	rp, err := p.relyingParty(r)
	if err != nil {
		return writeJSON(w, http.StatusBadRequest, errorBody{"bad_request"})
	}
	options, state, err := rp.BeginLogin(passkeyUser(rec))
	if errors.Is(err, accounts.ErrNoPasskey) {
		return passkeyRefused(w, http.StatusBadRequest, "no_passkey", "This account has no passkey.")
	}
	if err != nil {
		return err
	}
	if err := p.h.store.Stash(r.Context(), "pkstate2:"+r.URL.Query().Get("pending"), state, accounts.PasskeyCeremonyTimeout, p.h.now()); err != nil {
		return p.h.storeUnavailable(w, r, err)
	}
	return writeRawJSON(w, http.StatusOK, options)
}

// secondFinish checks the passkey after the password and signs in as
// password+passkey (or steps up). A refused passkey counts like a wrong
// code and keeps the password step for the next try, a few times.
func (p *passkeySignIn) secondFinish(w http.ResponseWriter, r *http.Request) error {
	if !p.checkForm(w, r) {
		return nil
	}
	h := p.h
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err != nil {
		return passkeyRefused(w, http.StatusBadRequest, "bad_request", msgPasskeyWrong)
	}
	user, tries, ok, err := p.passwordStep(r)
	if err != nil {
		return h.storeUnavailable(w, r, err)
	}
	ctx := r.Context()
	now := h.now()
	state, serr := h.store.Take(ctx, "pkstate2:"+r.URL.Query().Get("pending"), now)
	next := h.ForwardAuth.signInNext(r.URL.Query().Get("next"))
	again := h.Endpoints + "/sign-in?next=" + url.QueryEscape(next)
	if !ok || serr != nil {
		return writeJSON(w, http.StatusBadRequest, passkeyStepAnswer{"passkey_expired", stepExpired, again})
	}
	st, err := accountsPartOf(h.store)
	if err != nil {
		return h.storeUnavailable(w, r, err)
	}
	rec, err := st.GetAccount(ctx, user)
	if err != nil {
		return writeJSON(w, http.StatusBadRequest, passkeyStepAnswer{"passkey_expired", stepExpired, again})
	}
	who, known := p.person(rec)
	if !known {
		return writeJSON(w, http.StatusBadRequest, passkeyStepAnswer{"passkey_expired", stepExpired, again})
	}
	settle, err := h.spendProof(r, codeLimit, user)
	if err != nil {
		var rl errRateLimited
		if !errors.As(err, &rl) {
			return h.storeUnavailable(w, r, err)
		}
		return writeJSON(w, http.StatusTooManyRequests, passkeyStepAnswer{"rate_limited", msgPasskeyLocked, ""})
	}
	rp, err := p.relyingParty(r)
	if err != nil {
		return writeJSON(w, http.StatusBadRequest, errorBody{"bad_request"})
	}
	login, err := rp.FinishLogin(ctx, passkeyUser(rec), state, body, now)
	settle(err == nil)
	if err != nil {
		reason := "passkey"
		if errors.Is(err, accounts.ErrPasskeyCloned) {
			reason = "passkey_cloned"
			h.logger.Warn("passkey refused: its sign count went back, the authenticator may be cloned",
				zap.String("user_id", user), zap.String("ip_address", clientIP(r)), zap.Error(err))
		}
		h.signIn.loginFailed(r, user, reason)
		if tries+1 < maxCodeTries {
			if err := p.keepStep(r, user, tries+1); err != nil {
				return h.storeUnavailable(w, r, err)
			}
			return writeJSON(w, http.StatusBadRequest, passkeyStepAnswer{"passkey_refused", msgPasskeyWrong, ""})
		}
		return writeJSON(w, http.StatusBadRequest, passkeyStepAnswer{"passkey_refused", msgPasskeyWrong + " Enter your user name and password again.", again})
	}
	if _, err := st.UpdateAccount(ctx, user, func(a *session.Account) error {
		usedPasskey(a, login.Credential, now.UTC())
		a.LastSignInAt = now.UTC()
		return nil
	}); err != nil {
		h.logger.Warn("passkey second step: its sign count and last use not stored", zap.String("user_id", user), zap.Error(err))
	}
	who.method = methodPasswordPasskey
	return h.finishSignIn(w, r, who, stepUpOf{on: r.URL.Query().Get("step_up") == "1"}, func() error {
		return writeJSON(w, http.StatusOK, struct {
			Location string `json:"location"`
		}{next})
	})
}

// passkeyStepAnswer is a refused second step: with Location, the page
// to go back to (the password again).
type passkeyStepAnswer struct {
	Error    string `json:"error"`
	Message  string `json:"message"`
	Location string `json:"location,omitempty"`
}
