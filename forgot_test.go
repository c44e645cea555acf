package sessionauth

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/sessionauth/caddy-sessionauth/accounts"
	"github.com/sessionauth/caddy-sessionauth/email"
	"github.com/sessionauth/caddy-sessionauth/session"
	"github.com/sessionauth/caddy-sessionauth/session/storetest"
)

// forgotConfig turns the forgot page on: stored accounts, notify email
// and base_url for the link.
func forgotConfig(h *Handler) {
	h.SignIn = &SignIn{Stored: true}
	h.BaseURL = "https://app.example.com"
	h.NotifyEmail = &NotifyEmail{SMTP: "127.0.0.1:1", TLS: "none", From: "gw@example.com"}
}

// activate sets user's first password through the invitation.
func activate(t *testing.T, h *Handler, inv inviteJSON, password string) *formClient {
	t.Helper()
	c := newClient(t, h)
	page := c.get(inv.Invite).Body.String()
	w := c.postTo("/.auth/invite", url.Values{"csrf": {field(page, "csrf")}, "token": {field(page, "token")}, "password": {password}, "confirm": {password}})
	if w.Code != http.StatusSeeOther {
		t.Fatalf("invitation: %d %s", w.Code, w.Body)
	}
	return c
}

// askReset posts name on the forgot page: the answer.
func (c *formClient) askReset(name string) *httptest.ResponseRecorder {
	c.t.Helper()
	p := c.get("/.auth/forgot")
	if p.Code != http.StatusOK || field(p.Body.String(), "csrf") == "" {
		c.t.Fatalf("forgot page: %d %s", p.Code, p.Body)
	}
	return c.postTo("/.auth/forgot", url.Values{"csrf": {field(p.Body.String(), "csrf")}, "name": {name}})
}

// resetLinks are the paths of the reset links queued for to.
func (o *outboxSeen) resetLinks(to string) []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []string
	for _, n := range o.got {
		if n.Event == email.ResetLink && n.Email == to {
			out = append(out, strings.TrimPrefix(n.ResetURL, "https://app.example.com"))
		}
	}
	return out
}

func (o *outboxSeen) events(to string) []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []string
	for _, n := range o.got {
		if n.Email == to {
			out = append(out, n.Event)
		}
	}
	return out
}

// Forgot password on every store: the same page for a known and an
// unknown name; the account (by user id or email) gets a link by mail
// that works once and within 30 minutes; it sets the password, ends
// every session and token of the account (password_reset, with its
// mail), signs nobody in, and the next sign-in still asks for the code.
func TestForgotPassword(t *testing.T) {
	tokenStores(t, forgotConfig, testForgotPassword)
}

func testForgotPassword(t *testing.T, h *Handler, clock *storetest.Clock) {
	outbox := &outboxSeen{Store: h.notifier.store}
	h.notifier.store = outbox
	inv := createAccount(t, `{"user_id":"dana","email":"Dana@example.com","name":"Dana"}`)
	activate(t, h, inv, "correct horse")
	st, err := accountsOf(h.store)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.UpdateAccount(context.Background(), "dana", func(a *session.Account) error { a.TOTPSecret = stepUpTOTP; return nil }); err != nil {
		t.Fatal(err)
	}
	code := func() string { c, _ := accounts.TOTPCode(stepUpTOTP, clock.Now()); return c }
	signInCode := func(c *formClient, password string) *httptest.ResponseRecorder {
		w := c.signInWith("dana", password)
		if field(w.Body.String(), "pending") == "" {
			return w
		}
		return c.post(url.Values{"csrf": {field(w.Body.String(), "csrf")}, "next": {"/app"}, "pending": {field(w.Body.String(), "pending")}, "code": {code()}})
	}
	old := newClient(t, h)
	if w := signInCode(old, "correct horse"); w.Code != http.StatusSeeOther {
		t.Fatalf("sign-in before: %d %s", w.Code, w.Body)
	}
	tok := mustToken(t, h, old.cookies["session"], old.ip, "ci")

	anon := newClient(t, h)
	if p := anon.get("/.auth/sign-in").Body.String(); !strings.Contains(p, `<a href="/.auth/forgot">Forgot your password?</a>`) {
		t.Fatalf("the sign-in page does not link the forgot page:\n%s", p)
	}
	unknown := anon.askReset("nobody")
	known := anon.askReset("dana")
	byEmail := anon.askReset("DANA@EXAMPLE.COM")
	for _, w := range []*httptest.ResponseRecorder{unknown, known, byEmail} {
		if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "If an account matches, we sent a link") {
			t.Fatalf("forgot answer: %d %s", w.Code, w.Body)
		}
	}
	if unknown.Body.String() != known.Body.String() {
		t.Fatalf("an unknown name answers another page:\n%s\n----\n%s", unknown.Body, known.Body)
	}
	links := outbox.resetLinks("Dana@example.com")
	if len(links) != 2 || !strings.HasPrefix(links[0], "/.auth/forgot?token=") || links[0] == links[1] {
		t.Fatalf("reset mails: %q %+v", links, outbox.got)
	}
	for _, n := range outbox.got {
		if n.Event == email.ResetLink && (n.RevokeURL != "" || n.UserID != "dana" || n.Name != "Dana") {
			t.Fatalf("reset mail: %+v", n)
		}
	}
	if w := anon.askReset(""); w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "Type your user name") {
		t.Fatalf("no name: %d", w.Code)
	}

	// The link: a preview spends nothing; a short password keeps it.
	c := newClient(t, h)
	for range 2 {
		if w := c.get(links[0]); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `value="dana"`) || w.Header().Get("Referrer-Policy") != "strict-origin" {
			t.Fatalf("link page: %d %s", w.Code, w.Body)
		}
	}
	page := c.get(links[0]).Body.String()
	form := url.Values{"csrf": {field(page, "csrf")}, "token": {field(page, "token")}, "password": {"short"}, "confirm": {"short"}}
	if w := c.postTo("/.auth/forgot", form); w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "at least 8") {
		t.Fatalf("short password: %d %s", w.Code, w.Body)
	}
	form.Set("password", "battery staple")
	form.Set("confirm", "battery staple")
	w := c.postTo("/.auth/forgot", form)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "Your password was changed") || c.cookies["session"] != nil {
		t.Fatalf("new password: %d %s", w.Code, w.Body)
	}
	if w := c.postTo("/.auth/forgot", form); w.Code != http.StatusGone || !strings.Contains(w.Body.String(), "expired or was used") {
		t.Fatalf("the link again: %d %s", w.Code, w.Body)
	}
	if w := c.get(links[0]); w.Code != http.StatusGone {
		t.Fatalf("the used link's page: %d", w.Code)
	}

	// Every session and token ended; audited and mailed.
	if u, _ := old.whoAmI(); u != "" {
		t.Fatal("a session from before the reset still works")
	}
	up := &upstream{}
	serve(t, h, withBearer("/api", tok.Token, old.ip), up)
	if up.calls != 0 {
		t.Fatal("an API token from before the reset still works")
	}
	if !slices.Contains(eventTypes(t, h, "dana"), eventPasswordReset) {
		t.Fatalf("no password_reset event: %v", eventTypes(t, h, "dana"))
	}
	if !slices.Contains(outbox.events("Dana@example.com"), eventPasswordReset) {
		t.Fatalf("no password_reset mail: %v", outbox.events("Dana@example.com"))
	}

	// The old password is gone; the new one still asks for the code.
	if w := newClient(t, h).signInWith("dana", "correct horse"); w.Code != http.StatusUnauthorized {
		t.Fatalf("old password: %d", w.Code)
	}
	next := newClient(t, h)
	w = next.signInWith("dana", "battery staple")
	if field(w.Body.String(), "pending") == "" || next.cookies["session"] != nil {
		t.Fatalf("the new password alone signed in (or was refused): %d %s", w.Code, w.Body)
	}
	clock.Advance(30 * time.Second) // a new code step
	if w := signInCode(next, "battery staple"); w.Code != http.StatusSeeOther {
		t.Fatalf("password and code: %d %s", w.Code, w.Body)
	}
	if u, m := next.whoAmI(); u != "dana" || m != session.MethodPasswordTOTP {
		t.Fatalf("after the reset: %q %q", u, m)
	}

	// The other link expires 30 minutes after it was made.
	clock.Advance(30 * time.Minute)
	if w := c.get(links[1]); w.Code != http.StatusGone {
		t.Fatalf("an expired link's page: %d %s", w.Code, w.Body)
	}
	page = c.get("/.auth/forgot").Body.String()
	form = url.Values{"csrf": {field(page, "csrf")}, "token": {strings.TrimPrefix(links[1], "/.auth/forgot?token=")}, "password": {"a third one"}, "confirm": {"a third one"}}
	if w := c.postTo("/.auth/forgot", form); w.Code != http.StatusGone {
		t.Fatalf("an expired link: %d %s", w.Code, w.Body)
	}
}

// The forgot page refuses another site's POST and a form without its
// CSRF token; an API client gets JSON; a name gets at most 3 links per
// 30 minutes, and the page stays the same; disabled accounts and those
// without an email get none.
func TestForgotPasswordRefusals(t *testing.T) {
	h, clock := storedHandler(t, func(h *Handler) {
		forgotConfig(h)
		h.LoginRate = &Rate{Count: 1000, Window: caddy.Duration(time.Minute)}
	})
	outbox := &outboxSeen{Store: h.notifier.store}
	h.notifier.store = outbox
	activate(t, h, createAccount(t, `{"user_id":"eve","email":"eve@example.com"}`), "correct horse")
	activate(t, h, createAccount(t, `{"user_id":"nomail"}`), "correct horse")
	activate(t, h, createAccount(t, `{"user_id":"off","email":"off@example.com"}`), "correct horse")
	adminDo(t, "PATCH", "/session-auth/accounts/off", `{"disabled":true}`)

	c := newClient(t, h)
	csrf := field(c.get("/.auth/forgot").Body.String(), "csrf")
	cross := httptest.NewRequest("POST", "/.auth/forgot", strings.NewReader(url.Values{"csrf": {csrf}, "name": {"eve"}}.Encode()))
	cross.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	cross.Header.Set("Sec-Fetch-Site", "cross-site")
	if w := c.do(cross, nil); w.Code != http.StatusForbidden {
		t.Fatalf("cross-site: %d", w.Code)
	}
	if w := c.postTo("/.auth/forgot", url.Values{"name": {"eve"}}); w.Code != http.StatusForbidden {
		t.Fatalf("no CSRF token: %d", w.Code)
	}
	r := httptest.NewRequest("POST", "/.auth/forgot", strings.NewReader(url.Values{"csrf": {csrf}, "name": {"eve"}}.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("Accept", "application/json")
	if w := c.send(r); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"message":"If an account matches`) {
		t.Fatalf("API client: %d %s", w.Code, w.Body)
	}
	for range 3 {
		if w := c.askReset("eve"); w.Code != http.StatusOK {
			t.Fatalf("asked again: %d", w.Code)
		}
	}
	if n := len(outbox.resetLinks("eve@example.com")); n != 3 {
		t.Fatalf("links for one name within 30 minutes: %d", n)
	}
	clock.Advance(resetTTL + time.Second)
	c.askReset("eve")
	if n := len(outbox.resetLinks("eve@example.com")); n != 4 {
		t.Fatalf("a link 30 minutes on: %d", n)
	}
	c.askReset("off")
	c.askReset("nomail")
	if n := len(outbox.resetLinks("off@example.com")) + len(outbox.resetLinks("")); n != 0 {
		t.Fatalf("links for a disabled account or one without email: %+v", outbox.got)
	}
	if w := c.get("/.auth/forgot?token=nonsense"); w.Code != http.StatusGone {
		t.Fatalf("unknown token: %d", w.Code)
	}
}

// Counted by login_rate; without notify email (or stored accounts) there
// is no forgot page and no link to it.
func TestForgotPasswordRateAndOff(t *testing.T) {
	h, _ := storedHandler(t, func(h *Handler) {
		forgotConfig(h)
		h.LoginRate = &Rate{Count: 2, Window: caddy.Duration(time.Minute)}
	})
	h.notifier.store = &outboxSeen{Store: h.notifier.store}
	c := newClient(t, h)
	codes := []int{}
	for range 3 {
		codes = append(codes, c.askReset("someone").Code)
	}
	if !slices.Equal(codes, []int{200, 200, 429}) {
		t.Fatalf("login_rate 2: %v", codes)
	}

	off, _ := storedHandler(t, nil)
	oc := newClient(t, off)
	if w := oc.get("/.auth/forgot"); w.Code != http.StatusNotFound {
		t.Fatalf("forgot without notify email: %d", w.Code)
	}
	if p := oc.get("/.auth/sign-in").Body.String(); strings.Contains(p, "Forgot your password") {
		t.Fatal("the sign-in page links a forgot page that is off")
	}
}

// docs/sign-in.md's "Forgot password" recipe turns the page on, as
// written, and the sign-in page links it.
func TestDocsForgotPasswordRecipe(t *testing.T) {
	b, err := os.ReadFile("docs/sign-in.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n### Forgot password\n")
	_, block, ok2 := strings.Cut(section, "```caddyfile\n")
	block, _, ok3 := strings.Cut(block, "```\n")
	if !ok || !ok2 || !ok3 {
		t.Fatal(`docs/sign-in.md has no caddyfile block under "### Forgot password"`)
	}
	parsed := &Handler{}
	if err := parsed.UnmarshalCaddyfile(caddyfile.NewTestDispenser("session_auth {\n" + block + "}")); err != nil {
		t.Fatalf("the recipe: %v\n%s", err, block)
	}
	h, _ := testHandler(t, func(h *Handler) {
		h.SignIn, h.NotifyEmail, h.BaseURL = parsed.SignIn, parsed.NotifyEmail, parsed.BaseURL
	})
	c := newClient(t, h)
	if w := c.get("/.auth/forgot"); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "<h1>Forgot your password?</h1>") {
		t.Fatalf("forgot page: %d %s", w.Code, w.Body)
	}
	if p := c.get("/.auth/sign-in").Body.String(); !strings.Contains(p, "Forgot your password?") {
		t.Fatal("the sign-in page does not link the forgot page")
	}
}

// The cap of reset mails counts per account: its user name and its email
// typed in turn share one cap, not one each.
func TestForgotPasswordCapIsPerAccount(t *testing.T) {
	h, _ := storedHandler(t, forgotConfig)
	outbox := &outboxSeen{Store: h.notifier.store}
	h.notifier.store = outbox
	inv := createAccount(t, `{"user_id":"erin","email":"erin@example.com"}`)
	activate(t, h, inv, "correct horse")
	c := newClient(t, h)
	for i := range 2 * forgotPerName {
		name := "erin"
		if i%2 == 1 {
			name = "erin@example.com"
		}
		if w := c.askReset(name); w.Code != http.StatusOK {
			t.Fatalf("ask %d: %d %s", i, w.Code, w.Body)
		}
	}
	if links := outbox.resetLinks("erin@example.com"); len(links) != forgotPerName {
		t.Fatalf("%d reset mails for one account, want %d", len(links), forgotPerName)
	}
}
