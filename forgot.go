package sessionauth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/sessionauth/caddy-sessionauth/accounts"
	"github.com/sessionauth/caddy-sessionauth/email"
	"github.com/sessionauth/caddy-sessionauth/geo"
	"github.com/sessionauth/caddy-sessionauth/session"
)

// Forgot password (SPEC 15), with `accounts { stored }` and `notify
// email`: {endpoints}/forgot takes a user name or email and always
// answers the same page, so that it tells nobody which accounts exist.
// An enabled stored account with an email gets a link,
// {endpoints}/forgot?token=…, through the durable outbox. The token is
// random; the store keeps only its hash, as a Stash of resetTTL taken
// once (as an invitation is). The link's page sets a new password and
// ends every session and token of the account; it signs nobody in, so
// the second factor is still asked at the next sign-in.

// pageForgot is the forgot-password page (templates/forgot.html): the
// request, the answer, the new password, and the done page.
const pageForgot = "forgot.html"

const (
	resetTTL      = 30 * time.Minute
	maxForgotName = 320 // a user name or an email
	// forgotPerName caps the links one typed name gets per resetTTL,
	// silently (the page stays the same): a mailbox is not flooded by
	// someone who knows the address.
	forgotPerName = 3
)

// The page's words.
const (
	forgotSent = "If an account matches, we sent a link to its email address. The link works once, for 30 minutes. " +
		"No mail? Check the spelling, your spam folder, or ask the site's operator."
	forgotNoName = "Type your user name or your email address."
	forgotDone   = "Your password was changed, and every session of your account was signed out. Sign in with your new password."
)

// problemResetGone: the link's token is unknown, expired or used.
var problemResetGone = problem{http.StatusGone, "reset_invalid",
	"This link has expired or was used already",
	"A password reset link works once, within 30 minutes. Ask for a new one on the sign-in page's “Forgot your password?”."}

// forgotPassword is the forgot-password part; nil when off.
type forgotPassword struct {
	h *Handler
}

func newForgotPassword(h *Handler) *forgotPassword {
	if h.signIn == nil || !h.signIn.local.stored || h.NotifyEmail == nil {
		return nil
	}
	return &forgotPassword{h: h}
}

// forgotOn: the sign-in page links to the forgot page.
func forgotOn(si *SignIn, h *Handler) bool { return si.Stored && h.NotifyEmail != nil }

func (f *forgotPassword) addRoutes(e *endpointRoutes) {
	if f == nil {
		return // the table's 404
	}
	serve := func(w http.ResponseWriter, r *http.Request, _ string) error { return f.serve(w, r) }
	e.add([]route{
		{"GET /forgot", serve},
		{"POST /forgot", serve},
		{"/forgot", func(w http.ResponseWriter, _ *http.Request, _ string) error {
			return methodNotAllowed(w, "GET, HEAD, POST")
		}},
	})
}

// forgotPage is what the page shows.
type forgotPage struct {
	Host, Action, CSRF, SignIn string
	Error, Sent, Done          string
	// The link's step: its token and the account's user name.
	Token, User string
}

// resetRecord is what the store keeps of a link, under its token's hash:
// an invitation's record (whose, until when), read and spent the same way.
type resetRecord = invitation

func resetKey(token string) string { return "reset:" + hex.EncodeToString(sha256Of(token)) }

func (f *forgotPassword) serve(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost {
		if token := r.URL.Query().Get("token"); token != "" {
			return f.showLink(w, r, token)
		}
		return f.render(w, r, http.StatusOK, forgotPage{})
	}
	h := f.h
	if crossSite(r) {
		return answer(w, r, problemCrossSite)
	}
	if err := h.rateLimit(r, limitLogin, clientKey(clientIP(r)), "", h.LoginRate); err != nil {
		return h.refuse(w, r, err)
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxSignInForm)
	if err := r.ParseForm(); err != nil {
		return answer(w, r, problemBadForm)
	}
	if !h.signIn.validFormToken(r) {
		return answer(w, r, problemFormExpired)
	}
	if token := r.PostFormValue("token"); token != "" {
		return f.setPassword(w, r, token)
	}
	return f.request(w, r)
}

// request answers a name typed on the page: the same page whether or
// not an account has it, a link mailed when one does.
func (f *forgotPassword) request(w http.ResponseWriter, r *http.Request) error {
	h := f.h
	ctx := r.Context()
	name := strings.TrimSpace(r.PostFormValue("name"))
	if name == "" || len(name) > maxForgotName {
		if !wantsPage(r) {
			return writeJSON(w, http.StatusBadRequest, errorBody{"name_required"})
		}
		return f.render(w, r, http.StatusBadRequest, forgotPage{Error: forgotNoName})
	}
	now := h.now()
	acct, err := f.find(ctx, name)
	if err != nil {
		return h.storeUnavailable(w, r, err)
	}
	// The cap counts per account when one matches, so that its user name
	// and its email do not get a cap each; else per name typed.
	capKey := strings.ToLower(name)
	if acct != nil {
		capKey = "account\x00" + acct.UserID
	}
	n, _, err := h.store.Hit(ctx, "forgot:"+hex.EncodeToString(sha256Of(capKey)), resetTTL, now)
	if err != nil {
		return h.storeUnavailable(w, r, err)
	}
	if acct != nil && n <= forgotPerName {
		err = f.sendLink(r, acct, now)
	} else {
		// About the store work of a link: nobody learns from the time
		// taken that the name is unknown.
		var b [32]byte
		_, _ = rand.Read(b[:])
		if _, err = h.store.Take(ctx, resetKey(hex.EncodeToString(b[:])), now); errors.Is(err, session.ErrNotFound) {
			err = nil
		}
	}
	if err != nil {
		return h.storeUnavailable(w, r, err)
	}
	if !wantsPage(r) {
		return writeJSON(w, http.StatusOK, struct {
			Message string `json:"message"`
		}{forgotSent})
	}
	return f.render(w, r, http.StatusOK, forgotPage{Sent: forgotSent})
}

// find is the account a typed name means, when it may get a link: a
// stored, enabled account with an address a mail can go to, found by
// its user id or its email; nil otherwise.
func (f *forgotPassword) find(ctx context.Context, name string) (*session.Account, error) {
	st, err := accountsOf(f.h.store)
	if err != nil {
		return nil, err
	}
	a, err := st.GetAccount(ctx, name)
	if errors.Is(err, session.ErrNotFound) && strings.Contains(name, "@") {
		a, err = st.AccountByEmail(ctx, name)
	}
	if errors.Is(err, session.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if !a.Stored || a.Disabled || !email.ValidAddress(a.Email) {
		return nil, nil // an operator's record (its password is the Caddyfile's), or no address
	}
	return a, nil
}

// sendLink stashes a new link for acct and queues its mail. Without an
// address for the site (no base_url, a Host no matcher accepted) no link
// can be made: logged, and the page says the same.
func (f *forgotPassword) sendLink(r *http.Request, acct *session.Account, now time.Time) error {
	h := f.h
	base := h.linkBase(r)
	if base == "" {
		h.logger.Warn("no password reset link mailed: set base_url", zap.String("user_id", acct.UserID))
		return nil
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return err
	}
	token := base64.RawURLEncoding.EncodeToString(b[:])
	v, _ := json.Marshal(resetRecord{User: acct.UserID, Expires: now.Add(resetTTL).UTC()})
	if err := h.store.Stash(r.Context(), resetKey(token), v, resetTTL, now); err != nil {
		return err
	}
	notice := f.notice(r, email.ResetLink, acct, now)
	notice.ResetURL = base + h.Endpoints + "/forgot?token=" + token
	if err := f.enqueue(r, notice); err != nil {
		return err
	}
	if c := h.logger.Check(zap.InfoLevel, "password reset link mailed"); c != nil {
		c.Write(zap.String("user_id", acct.UserID), zap.String("ip_address", clientIP(r)))
	}
	return nil
}

// notice is a mail to acct about event, naming the browser that asked.
func (f *forgotPassword) notice(r *http.Request, event string, acct *session.Account, now time.Time) session.Notice {
	d := geo.ParseUserAgent(r.UserAgent())
	return session.Notice{
		Event: event, Events: []string{event}, At: now.UTC(), UserID: acct.UserID,
		DeviceName: d.Name, Browser: d.Browser, OS: d.OS, IP: clientIP(r),
		Email: acct.Email, Name: acct.Name,
	}
}

// enqueue queues a mail in the durable outbox, in r's trace.
func (f *forgotPassword) enqueue(r *http.Request, n session.Notice) error {
	f.h.notifier.traceNotice(r, &n)
	if err := f.h.notifier.store.Enqueue(context.Background(), mailTarget, n); err != nil {
		f.h.metrics.notification("dropped")
		return err
	}
	return nil
}

// take takes the link of token from the store (spent unless put back);
// ErrNotFound when there is none or it has expired.
func (f *forgotPassword) take(ctx context.Context, token string) (resetRecord, error) {
	return takeTicket(ctx, f.h.store, token, resetKey(token), f.h.now())
}

func (f *forgotPassword) putBack(ctx context.Context, token string, rec resetRecord) error {
	return putTicketBack(ctx, f.h.store, resetKey(token), rec, f.h.now())
}

// usable: the link's account may still set its password.
func (f *forgotPassword) usable(ctx context.Context, user string) (bool, error) {
	st, err := accountsOf(f.h.store)
	if err != nil {
		return false, err
	}
	a, err := st.GetAccount(ctx, user)
	if errors.Is(err, session.ErrNotFound) {
		return false, nil
	}
	return err == nil && a.Stored && !a.Disabled, err
}

// showLink is the link's page: read, not spent (a mail client's or a
// chat's link preview opens it too).
func (f *forgotPassword) showLink(w http.ResponseWriter, r *http.Request, token string) error {
	ctx := r.Context()
	rec, err := f.take(ctx, token)
	if errors.Is(err, session.ErrNotFound) {
		return answer(w, r, problemResetGone)
	}
	if err != nil {
		return f.h.storeUnavailable(w, r, err)
	}
	if err := f.putBack(ctx, token, rec); err != nil {
		return f.h.storeUnavailable(w, r, err)
	}
	if ok, err := f.usable(ctx, rec.User); err != nil {
		return f.h.storeUnavailable(w, r, err)
	} else if !ok {
		return answer(w, r, problemResetGone)
	}
	return f.render(w, r, http.StatusOK, forgotPage{Token: token, User: rec.User})
}

// setPassword spends the link: the new password set, every session and
// token of the account ended, the person sent to sign in.
func (f *forgotPassword) setPassword(w http.ResponseWriter, r *http.Request, token string) error {
	h := f.h
	ctx := r.Context()
	rec, err := f.take(ctx, token)
	if errors.Is(err, session.ErrNotFound) {
		return answer(w, r, problemResetGone)
	}
	if err != nil {
		return h.storeUnavailable(w, r, err)
	}
	password := r.PostFormValue("password")
	problemText := accounts.PasswordProblem(password)
	if problemText == "" && password != r.PostFormValue("confirm") {
		problemText = "The two passwords differ. Type the same password twice."
	}
	if problemText != "" {
		// Not spent: the person tries again with the same link.
		if err := f.putBack(ctx, token, rec); err != nil {
			return h.storeUnavailable(w, r, err)
		}
		if !wantsPage(r) {
			return writeJSON(w, http.StatusBadRequest, errorBody{"password_length"})
		}
		return f.render(w, r, http.StatusBadRequest, forgotPage{Token: token, User: rec.User, Error: problemText})
	}
	hash, err := accounts.HashPassword(password)
	if err != nil {
		return h.storeUnavailable(w, r, err)
	}
	st, err := accountsOf(h.store)
	if err != nil {
		return h.storeUnavailable(w, r, err)
	}
	acct, err := st.UpdateAccount(ctx, rec.User, func(a *session.Account) error {
		if !a.Stored || a.Disabled {
			return errInviteStale
		}
		a.PasswordHash = hash
		return nil
	})
	if errors.Is(err, errInviteStale) || errors.Is(err, session.ErrNotFound) {
		return answer(w, r, problemResetGone)
	}
	if err != nil {
		return h.storeUnavailable(w, r, err)
	}
	// Whoever knew the old password, or holds a session or token of the
	// account, is out.
	now := h.now()
	ended, err := h.store.EndUser(ctx, acct.UserID, "", now, session.EndRevoked, session.ActorSelf, h.policy)
	if err != nil {
		return h.storeUnavailable(w, r, err)
	}
	h.sessionsEnded(ended, ending{reason: session.EndRevoked, actor: session.ActorSelf, at: now, ctx: r.Context()})
	h.recordAccountEvent(ctx, eventPasswordReset, acct.UserID, session.ActorSelf, clientIP(r))
	if email.ValidAddress(acct.Email) {
		if err := f.enqueue(r, f.notice(r, eventPasswordReset, acct, now)); err != nil {
			h.logger.Error("queueing an account change mail", zap.String("event", eventPasswordReset), zap.Error(err))
		}
	}
	if !wantsPage(r) {
		return writeJSON(w, http.StatusOK, struct {
			Status string `json:"status"`
		}{eventPasswordReset})
	}
	return f.render(w, r, http.StatusOK, forgotPage{Done: forgotDone})
}

func (f *forgotPassword) render(w http.ResponseWriter, r *http.Request, status int, page forgotPage) error {
	page.Host = sanitise(r.Host, 256)
	page.Action = f.h.Endpoints + "/forgot"
	page.SignIn = f.h.Endpoints + "/sign-in"
	page.CSRF = f.h.signIn.formToken(w, r)
	htmlHeaders(w)
	// The token is in the link's address: send no path or query on. Not
	// no-referrer: under it Chromium posts the form with Origin null,
	// which the same-origin check refuses.
	w.Header().Set("Referrer-Policy", "strict-origin")
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return nil
	}
	return renderPage(w, pageForgot, page)
}
