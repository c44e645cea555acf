package sessionauth

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"golang.org/x/crypto/bcrypt"

	"github.com/sessionauth/caddy-sessionauth/accounts"
	"github.com/sessionauth/caddy-sessionauth/internal/redisserver"
	"github.com/sessionauth/caddy-sessionauth/session"
	"github.com/sessionauth/caddy-sessionauth/session/storetest"
)

// accountHandler has the operator's accounts alice and bob (bob with a
// TOTP in the Caddyfile), password "demo", on store (nil: a file store).
func accountHandler(t *testing.T, store *StoreConfig, configure func(*Handler)) (*Handler, *storetest.Clock) {
	t.Helper()
	hash, _ := bcrypt.GenerateFromPassword([]byte("demo"), bcrypt.MinCost)
	return testHandler(t, func(h *Handler) {
		if store != nil {
			c := *store
			h.Store = &c
		}
		h.LoginRate = &Rate{Count: 1000, Window: caddy.Duration(time.Minute)}
		h.SignIn = &SignIn{Accounts: []*Account{
			{User: "alice", Hash: string(hash), Name: "Alice <A>", Email: "alice@example.com"},
			{User: "bob", Hash: string(hash), TOTP: stepUpTOTP, Email: "bob@example.com"},
		}}
		if configure != nil {
			configure(h)
		}
	})
}

// send makes c send r (Accept: text/html unless r says otherwise) and
// keeps the cookies it gets.
func (c *formClient) send(r *http.Request) *httptest.ResponseRecorder {
	c.t.Helper()
	for _, k := range c.cookies {
		r.AddCookie(k)
	}
	if r.Header.Get("Accept") == "" {
		r.Header.Set("Accept", "text/html")
	}
	r.Header.Set("Test-Client-IP", c.ip)
	w := serve(c.t, c.h, r, &upstream{})
	for _, k := range w.Result().Cookies() {
		if k.MaxAge < 0 {
			delete(c.cookies, k.Name)
		} else {
			c.cookies[k.Name] = k
		}
	}
	return w
}

// form posts form to path; hdr adds headers (Accept, Origin, …).
func (c *formClient) form(path string, form url.Values, hdr ...string) *httptest.ResponseRecorder {
	c.t.Helper()
	r := httptest.NewRequest("POST", path, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	return c.send(r)
}

// account is the account page as JSON.
func (c *formClient) account() (accountJSON, int) {
	c.t.Helper()
	r := httptest.NewRequest("GET", "/.auth/account", nil)
	r.Header.Set("Accept", "application/json")
	w := c.send(r)
	var a accountJSON
	if w.Code == http.StatusOK {
		if err := json.Unmarshal(w.Body.Bytes(), &a); err != nil {
			c.t.Fatalf("account JSON: %v %s", err, w.Body)
		}
	}
	return a, w.Code
}

// csrf is the account page's CSRF token.
func (c *formClient) csrf() string {
	c.t.Helper()
	w := c.get("/.auth/account")
	if w.Code != http.StatusOK || field(w.Body.String(), "csrf") == "" {
		c.t.Fatalf("account page: %d %s", w.Code, w.Body)
	}
	return field(w.Body.String(), "csrf")
}

// signInCode signs user in with password "demo" and then code at the
// code step: the last answer.
func (c *formClient) signInCode(user, code string) *httptest.ResponseRecorder {
	c.t.Helper()
	p := c.get("/.auth/sign-in?next=%2Fapp")
	w := c.post(url.Values{"csrf": {field(p.Body.String(), "csrf")}, "next": {"/app"}, "username": {user}, "password": {"demo"}})
	if field(w.Body.String(), "pending") == "" {
		return w
	}
	return c.post(url.Values{"csrf": {field(w.Body.String(), "csrf")}, "next": {"/app"}, "pending": {field(w.Body.String(), "pending")}, "code": {code}})
}

func (c *formClient) method() string {
	c.t.Helper()
	s, err := c.h.store.Get(context.Background(), c.sessionID())
	if err != nil {
		c.t.Fatal(err)
	}
	return s.AuthMethod
}

func newFormClient(t *testing.T, h *Handler, ip string) *formClient {
	return &formClient{t: t, h: h, ip: ip, cookies: map[string]*http.Cookie{}}
}

func eventTypes(t *testing.T, h *Handler, user string) []string {
	t.Helper()
	evs, err := h.store.Events(context.Background(), user, time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range evs {
		types = append(types, e.Type)
	}
	return types
}

// The account page shows the signed-in person's sign-in methods, in the
// sessions page's layout and as JSON, and the sessions page links to it;
// an anonymous browser is sent to sign in and an API client gets 401; a
// hand-off's session has no account here.
func TestAccountPageShowsMethods(t *testing.T) {
	for _, store := range []*StoreConfig{{Type: "memory"}, nil} {
		h, _ := accountHandler(t, store, nil)
		c := newFormClient(t, h, "192.0.2.10")
		c.signIn("bob", func() string { code, _ := accounts.TOTPCode(stepUpTOTP, h.now()); return code })
		w := c.get("/.auth/account")
		body := w.Body.String()
		for _, want := range []string{"<h1>Your account</h1>", "Signed in as bob (bob)", "Your password is set by the site's operator.",
			`Authenticator app <span class="badge">On</span>`, "It is set by the site's operator.", `action="/.auth/account/recovery-codes"`,
			`main class="list"`} {
			if !strings.Contains(body, want) {
				t.Fatalf("account page lacks %q:\n%s", want, body)
			}
		}
		if w.Code != http.StatusOK || strings.Contains(body, `action="/.auth/account/totp/remove"`) || strings.Contains(body, `action="/.auth/account/password"`) {
			t.Fatalf("account page: %d\n%s", w.Code, body)
		}
		a, code := c.account()
		if code != http.StatusOK || a.UserID != "bob" || !a.Password || !a.TOTP || a.RecoveryCodes != 0 || a.Passkeys != 0 || a.Disabled {
			t.Fatalf("account JSON: %d %+v", code, a)
		}
		if s := c.get("/.auth/sessions").Body.String(); !strings.Contains(s, `href="/.auth/account">Your account</a>`) {
			t.Fatalf("the sessions page does not link to the account page:\n%s", s)
		}

		anon := newFormClient(t, h, "192.0.2.11")
		r := httptest.NewRequest("GET", "/.auth/account", nil)
		r.Header.Set("Sec-Fetch-Mode", "navigate")
		r.Header.Set("Sec-Fetch-Dest", "document")
		if w := anon.send(r); w.Code != http.StatusSeeOther || !strings.HasPrefix(w.Header().Get("Location"), "/.auth/sign-in?next=") {
			t.Fatalf("anonymous browser: %d %q", w.Code, w.Header().Get("Location"))
		}
		if _, code := anon.account(); code != http.StatusUnauthorized {
			t.Fatalf("anonymous API client: %d", code)
		}

		handoff := newFormClient(t, h, "192.0.2.12")
		handoff.cookies["session"] = signIn(t, h, "alice")
		if _, code := handoff.account(); code != http.StatusNotFound {
			t.Fatalf("a hand-off's session named alice: %d", code)
		}
	}
}

// outboxSeen keeps what is queued for delivery, and delivers nothing.
type outboxSeen struct {
	session.Store
	mu      sync.Mutex
	got     []session.Notice
	targets []string
}

func (o *outboxSeen) Enqueue(_ context.Context, target string, n session.Notice) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.got, o.targets = append(o.got, n), append(o.targets, target)
	return nil
}

// An authenticator app added on the account page: the page shows its
// secret, otpauth URI and QR code (the secret stays in the store, not in
// the form); a wrong first code shows it again; the code the app computes
// from the page's URI turns it on (event, mail). The next sign-in asks
// for its code, and takes it.
func TestTOTPEnrolOnAccountPage(t *testing.T) {
	h, clock := accountHandler(t, nil, func(h *Handler) {
		h.NotifyEmail = &NotifyEmail{SMTP: "127.0.0.1:1", TLS: "none", From: "gw@example.com"}
	})
	outbox := &outboxSeen{Store: h.notifier.store}
	h.notifier.store = outbox // what the dispatcher would send
	c := newFormClient(t, h, "192.0.2.10")
	c.signIn("alice", nil)
	csrf := c.csrf()
	w := c.form("/.auth/account/totp", url.Values{"csrf": {csrf}})
	body := w.Body.String()
	if w.Code != http.StatusOK || !strings.Contains(body, "<svg") || !strings.Contains(body, `aria-label="QR code"`) ||
		strings.Contains(body, `name="secret"`) || strings.Contains(body, "<script") {
		t.Fatalf("enrolment page: %d\n%s", w.Code, body)
	}
	m := regexp.MustCompile(`id="uri" value="([^"]+)"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no otpauth URI on the page:\n%s", body)
	}
	key, err := otp.NewKeyFromURL(html.UnescapeString(m[1]))
	if err != nil || key.Type() != "totp" || key.AccountName() != "alice" || !strings.Contains(body, `value="`+key.Secret()+`"`) {
		t.Fatalf("otpauth URI %q: %v", m[1], err)
	}
	code := func(at time.Time) string {
		c, err := totp.GenerateCode(key.Secret(), at)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	wrong := "000000"
	for slices.Contains([]string{code(clock.Now().Add(-30 * time.Second)), code(clock.Now()), code(clock.Now().Add(30 * time.Second))}, wrong) {
		wrong = "111111"
	}
	w = c.form("/.auth/account/totp/confirm", url.Values{"csrf": {csrf}, "code": {wrong}})
	if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "Wrong code") || !strings.Contains(w.Body.String(), key.Secret()) {
		t.Fatalf("a wrong first code: %d\n%s", w.Code, w.Body)
	}
	if a, _ := c.account(); a.TOTP {
		t.Fatal("a wrong code turned TOTP on")
	}
	w = c.form("/.auth/account/totp/confirm", url.Values{"csrf": {csrf}, "code": {code(clock.Now())}})
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/.auth/account?done=totp_added" {
		t.Fatalf("confirm: %d %q %s", w.Code, w.Header().Get("Location"), w.Body)
	}
	if a, _ := c.account(); !a.TOTP {
		t.Fatal("TOTP is not on after the right code")
	}
	if !slices.Contains(eventTypes(t, h, "alice"), eventTOTPAdded) {
		t.Fatalf("no totp_added event: %v", eventTypes(t, h, "alice"))
	}
	if !slices.ContainsFunc(outbox.got, func(n session.Notice) bool {
		return n.Event == eventTOTPAdded && n.Email == "alice@example.com" && outbox.targets[0] == mailTarget
	}) {
		t.Fatalf("no totp_added mail to alice: %+v", outbox.got)
	}
	// Confirmed again: the enrolment was used.
	if w := c.form("/.auth/account/totp/confirm", url.Values{"csrf": {csrf}, "code": {code(clock.Now())}}); w.Code != http.StatusConflict {
		t.Fatalf("a second confirm: %d", w.Code)
	}

	clock.Advance(30 * time.Second) // the confirming code's step is used
	next := newFormClient(t, h, "192.0.2.20")
	p := next.get("/.auth/sign-in?next=%2Fapp")
	w = next.post(url.Values{"csrf": {field(p.Body.String(), "csrf")}, "next": {"/app"}, "username": {"alice"}, "password": {"demo"}})
	if field(w.Body.String(), "pending") == "" || next.cookies["session"] != nil {
		t.Fatalf("the next sign-in does not ask for the code: %d %s", w.Code, w.Body)
	}
	w = next.post(url.Values{"csrf": {field(w.Body.String(), "csrf")}, "next": {"/app"}, "pending": {field(w.Body.String(), "pending")}, "code": {code(clock.Now())}})
	if w.Code != http.StatusSeeOther || next.cookies["session"] == nil || next.method() != session.MethodPasswordTOTP {
		t.Fatalf("the app's code at sign-in: %d %s", w.Code, w.Body)
	}

	// Removed, the next sign-in asks for no code.
	if w := c.form("/.auth/account/totp/remove", url.Values{"csrf": {csrf}}); w.Code != http.StatusSeeOther {
		t.Fatalf("remove: %d %s", w.Code, w.Body)
	}
	if w := newFormClient(t, h, "192.0.2.21").signInCode("alice", ""); w.Code != http.StatusSeeOther {
		t.Fatalf("sign-in after removal: %d %s", w.Code, w.Body)
	}
	if !slices.Contains(eventTypes(t, h, "alice"), eventTOTPRemoved) {
		t.Fatal("no totp_removed event")
	}
}

// Under second_factor required, the last second factor cannot be
// removed; the Caddyfile's TOTP is never the person's to remove.
func TestTOTPEnrolRemovalKeepsRequiredFactor(t *testing.T) {
	h, clock := accountHandler(t, nil, func(h *Handler) { h.SignIn.SecondFactor = secondFactorRequired })
	c := newFormClient(t, h, "192.0.2.10")
	c.enrolAtSignIn("alice", clock.Now) // her app, added at her first sign-in
	csrf := c.csrf()
	w := c.form("/.auth/account/totp/remove", url.Values{"csrf": {csrf}}, "Accept", "application/json")
	if w.Code != http.StatusConflict || !strings.Contains(w.Body.String(), "second_factor_required") {
		t.Fatalf("removing the last second factor: %d %s", w.Code, w.Body)
	}
	if a, _ := c.account(); !a.TOTP {
		t.Fatal("the last second factor was removed")
	}

	b := newFormClient(t, h, "192.0.2.11")
	b.signIn("bob", func() string { code, _ := accounts.TOTPCode(stepUpTOTP, h.now()); return code })
	if w := b.form("/.auth/account/totp/remove", url.Values{"csrf": {b.csrf()}}, "Accept", "application/json"); w.Code != http.StatusForbidden {
		t.Fatalf("removing the Caddyfile's TOTP: %d %s", w.Code, w.Body)
	}
}

// Recovery codes: ten, shown once, stored hashed; each signs in once in
// place of the TOTP code (password+recovery, recovery_code_used), a used
// one fails, and new codes replace the old. On every store.
func TestRecoveryCodesOnAccountPage(t *testing.T) {
	t.Run("memory", func(t *testing.T) { testRecoveryCodes(t, &StoreConfig{Type: "memory"}) })
	t.Run("file", func(t *testing.T) {
		testRecoveryCodes(t, &StoreConfig{Type: "file", Path: filepath.Join(t.TempDir(), "sessions.db")})
	})
	t.Run("redis", func(t *testing.T) {
		srv := redisserver.Start(t)
		testRecoveryCodes(t, &StoreConfig{Type: "redis", URL: "redis://" + srv.Addr, KeyPrefix: "rc:"})
	})
}

var recoveryCodeOnPage = regexp.MustCompile(`<code>([a-z0-9]{5}-[a-z0-9]{5})</code>`)

func testRecoveryCodes(t *testing.T, store *StoreConfig) {
	h, clock := accountHandler(t, store, func(h *Handler) {
		h.NotifyEmail = &NotifyEmail{SMTP: "127.0.0.1:1", TLS: "none", From: "gw@example.com", Events: []string{"impossible_travel"}}
	})
	outbox := &outboxSeen{Store: h.notifier.store}
	h.notifier.store = outbox // what the dispatcher would send
	c := newFormClient(t, h, "192.0.2.10")
	c.signIn("bob", func() string { code, _ := accounts.TOTPCode(stepUpTOTP, h.now()); return code })
	csrf := c.csrf()
	makeCodes := func() []string {
		w := c.form("/.auth/account/recovery-codes", url.Values{"csrf": {csrf}})
		var codes []string
		for _, m := range recoveryCodeOnPage.FindAllStringSubmatch(w.Body.String(), -1) {
			codes = append(codes, m[1])
		}
		if w.Code != http.StatusOK || len(codes) != accounts.RecoveryCodeCount || w.Header().Get("Cache-Control") != "no-store" {
			t.Fatalf("recovery codes page: %d %d codes\n%s", w.Code, len(codes), w.Body)
		}
		return codes
	}
	old := makeCodes()
	codes := makeCodes()
	if a, _ := c.account(); a.RecoveryCodes != 10 {
		t.Fatalf("recovery_codes_left %d", a.RecoveryCodes)
	}
	accts, _ := storeAccounts(h.store)
	rec, err := accts.GetAccount(context.Background(), "bob")
	if err != nil || rec.Stored || slices.ContainsFunc(rec.RecoveryCodes, func(h string) bool { return slices.Contains(codes, h) }) {
		t.Fatalf("stored record: %v %+v", err, rec)
	}
	if page := c.get("/.auth/account").Body.String(); recoveryCodeOnPage.MatchString(page) {
		t.Fatalf("the account page shows codes again:\n%s", page)
	}

	n := 0
	try := func(code string) (*httptest.ResponseRecorder, *formClient) {
		n++
		clock.Advance(time.Second)
		fc := newFormClient(t, h, fmt.Sprintf("198.51.100.%d", n))
		return fc.signInCode("bob", code), fc
	}
	if w, _ := try(old[0]); w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), wrongRecoveryCode) {
		t.Fatalf("a code of the replaced set: %d %s", w.Code, w.Body)
	}
	w, fc := try(strings.ToUpper(codes[3]))
	if w.Code != http.StatusSeeOther || fc.cookies["session"] == nil || fc.method() != methodPasswordRecovery {
		t.Fatalf("a recovery code: %d %s", w.Code, w.Body)
	}
	if w, fc := try(codes[3]); w.Code != http.StatusUnauthorized || fc.cookies["session"] != nil {
		t.Fatalf("the same code again: %d %s", w.Code, w.Body)
	}
	if w, _ := try(codes[7]); w.Code != http.StatusSeeOther {
		t.Fatalf("another code: %d %s", w.Code, w.Body)
	}
	if a, _ := c.account(); a.RecoveryCodes != 8 {
		t.Fatalf("recovery_codes_left after two: %d", a.RecoveryCodes)
	}
	types := eventTypes(t, h, "bob")
	used := 0
	for _, e := range types {
		if e == eventRecoveryCodeUsed {
			used++
		}
	}
	if used != 2 || !slices.Contains(types, eventRecoveryCodes) {
		t.Fatalf("events: %v", types)
	}
	// Mailed whatever events notify email lists for sign-ins: the codes
	// made, and each code used, about the session it signed in.
	var mailed []string
	for _, n := range outbox.got {
		if n.Email == "bob@example.com" {
			mailed = append(mailed, n.Event)
		}
		if n.Event == eventRecoveryCodeUsed && (n.SessionID == "" || n.SessionID == c.sessionID()) {
			t.Fatalf("recovery_code_used mail about session %q", n.SessionID)
		}
	}
	if want := []string{eventRecoveryCodes, eventRecoveryCodes, eventRecoveryCodeUsed, eventRecoveryCodeUsed}; !slices.Equal(mailed, want) {
		t.Fatalf("mails %v, want %v", mailed, want)
	}
}

// mintFor signs user in as an account would (for a stored account, whose
// password sign-in is not this page's): its session cookie.
func mintFor(t *testing.T, h *Handler, user, ip string) *http.Cookie {
	t.Helper()
	r := httptest.NewRequest("POST", "/.auth/sign-in", nil)
	ctx := context.WithValue(r.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer())
	ctx = context.WithValue(ctx, caddyhttp.VarsCtxKey, map[string]any{caddyhttp.ClientIPVarKey: ip})
	w := httptest.NewRecorder()
	if _, err := h.mint(w, r.WithContext(ctx), signedIn{userID: user, method: session.MethodPassword}); err != nil {
		t.Fatal(err)
	}
	for _, c := range w.Result().Cookies() {
		if c.Name == "session" {
			return c
		}
	}
	t.Fatal("no session cookie")
	return nil
}

// A stored account changes its password: the current one is checked, the
// new one is 8..256 characters; the account's other sessions end, this
// one stays; an operator's account has no password to change here.
func TestAccountPagePasswordChange(t *testing.T) {
	h, _ := accountHandler(t, &StoreConfig{Type: "memory"}, nil)
	hash, err := accounts.HashPassword("old password")
	if err != nil {
		t.Fatal(err)
	}
	accts, _ := storeAccounts(h.store)
	if err := accts.CreateAccount(context.Background(), &session.Account{UserID: "dora", Email: "dora@example.com", Stored: true,
		PasswordHash: hash, CreatedAt: h.now()}); err != nil {
		t.Fatal(err)
	}
	here, other := newFormClient(t, h, "192.0.2.10"), newFormClient(t, h, "192.0.2.11")
	here.cookies["session"] = mintFor(t, h, "dora", here.ip)
	other.cookies["session"] = mintFor(t, h, "dora", other.ip)
	if a, code := here.account(); code != http.StatusOK || !a.Password || a.Email != "dora@example.com" || a.CreatedAt == "" {
		t.Fatalf("stored account JSON: %d %+v", code, a)
	}
	csrf := here.csrf()
	if !strings.Contains(here.get("/.auth/account").Body.String(), `action="/.auth/account/password"`) {
		t.Fatal("no password form for a stored account")
	}
	for _, tc := range []struct {
		current, next string
		status        int
	}{{"old password", "short", http.StatusBadRequest}, {"old password", strings.Repeat("x", 257), http.StatusBadRequest},
		{"wrong one", "new password", http.StatusForbidden}} {
		if w := here.form("/.auth/account/password", url.Values{"csrf": {csrf}, "current": {tc.current}, "new": {tc.next}}); w.Code != tc.status {
			t.Fatalf("%q -> %q: %d, want %d", tc.current, tc.next, w.Code, tc.status)
		}
	}
	if _, code := other.account(); code != http.StatusOK {
		t.Fatal("a refused change ended the other session")
	}
	w := here.form("/.auth/account/password", url.Values{"csrf": {csrf}, "current": {"old password"}, "new": {"new password, long"}})
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/.auth/account?done=password_changed" {
		t.Fatalf("change: %d %s", w.Code, w.Body)
	}
	if _, code := here.account(); code != http.StatusOK {
		t.Fatalf("this session after the change: %d", code)
	}
	if _, code := other.account(); code != http.StatusUnauthorized {
		t.Fatalf("the other session after the change: %d", code)
	}
	rec, _ := accts.GetAccount(context.Background(), "dora")
	if !accounts.CheckPassword(rec.PasswordHash, "new password, long") || accounts.CheckPassword(rec.PasswordHash, "old password") {
		t.Fatal("the stored hash is not the new password's")
	}
	if !slices.Contains(eventTypes(t, h, "dora"), eventPasswordChanged) {
		t.Fatal("no password_changed event")
	}

	op := newFormClient(t, h, "192.0.2.12")
	op.signIn("alice", nil)
	if w := op.form("/.auth/account/password", url.Values{"csrf": {op.csrf()}, "current": {"demo"}, "new": {"new password"}}); w.Code != http.StatusForbidden {
		t.Fatalf("an operator's account: %d", w.Code)
	}
}

// The forms are refused without the CSRF token, from another site, and
// with an API client's stale session; nothing changes.
func TestAccountPageRefusesCSRFAndCrossSite(t *testing.T) {
	h, _ := accountHandler(t, nil, nil)
	c := newFormClient(t, h, "192.0.2.10")
	c.signIn("alice", nil)
	csrf := c.csrf()
	for name, w := range map[string]*httptest.ResponseRecorder{
		"no token":    c.form("/.auth/account/recovery-codes", url.Values{}),
		"wrong token": c.form("/.auth/account/recovery-codes", url.Values{"csrf": {"x" + csrf[1:]}}),
		"origin":      c.form("/.auth/account/recovery-codes", url.Values{"csrf": {csrf}}, "Origin", "https://evil.example"),
		"fetch-site":  c.form("/.auth/account/totp", url.Values{"csrf": {csrf}}, "Sec-Fetch-Site", "cross-site"),
	} {
		if w.Code != http.StatusForbidden || recoveryCodeOnPage.MatchString(w.Body.String()) {
			t.Fatalf("%s: %d %s", name, w.Code, w.Body)
		}
	}
	if a, _ := c.account(); a.RecoveryCodes != 0 || a.TOTP {
		t.Fatalf("a refused form changed the account: %+v", a)
	}
	if w := c.get("/.auth/account/password"); w.Code != http.StatusMethodNotAllowed {
		t.Fatalf("GET on a form: %d", w.Code)
	}
	if w := c.form("/.auth/account/nothing", url.Values{"csrf": {csrf}}); w.Code != http.StatusNotFound {
		t.Fatalf("an unknown form: %d", w.Code)
	}
}

// A sign-in older than 10 minutes: a change sends the browser to the
// step-up, which returns to the account page, after which it works; an
// API client gets 403 step_up_required.
func TestAccountPageStaleSignInStepsUp(t *testing.T) {
	h, clock := accountHandler(t, nil, nil)
	c := newFormClient(t, h, "192.0.2.10")
	c.signIn("alice", nil)
	csrf := c.csrf()
	clock.Advance(accountFresh + time.Second)
	if p := c.get("/.auth/account").Body.String(); !strings.Contains(p, "a change asks you to sign in again first") {
		t.Fatalf("the stale page does not say so:\n%s", p)
	}
	w := c.form("/.auth/account/recovery-codes", url.Values{"csrf": {csrf}})
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/.auth/sign-in?step_up=1&next=%2F.auth%2Faccount" {
		t.Fatalf("stale change: %d %q", w.Code, w.Header().Get("Location"))
	}
	if w := c.form("/.auth/account/recovery-codes", url.Values{"csrf": {csrf}}, "Accept", "application/json"); w.Code != http.StatusForbidden ||
		!strings.Contains(w.Body.String(), "step_up_required") {
		t.Fatalf("stale change by an API client: %d %s", w.Code, w.Body)
	}
	if a, _ := c.account(); a.RecoveryCodes != 0 {
		t.Fatal("a stale session made codes")
	}
	p := c.get("/.auth/sign-in?step_up=1&next=%2F.auth%2Faccount").Body.String()
	w = c.post(url.Values{"csrf": {field(p, "csrf")}, "next": {"/.auth/account"}, "step_up": {"1"}, "username": {"alice"}, "password": {"demo"}})
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/.auth/account" {
		t.Fatalf("step-up: %d %q %s", w.Code, w.Header().Get("Location"), w.Body)
	}
	if w := c.form("/.auth/account/recovery-codes", url.Values{"csrf": {csrf}}); w.Code != http.StatusOK {
		t.Fatalf("after the step-up: %d %s", w.Code, w.Body)
	}
}
