package sessionauth

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"golang.org/x/crypto/bcrypt"

	"github.com/sessionauth/caddy-sessionauth/internal/redisserver"
	"github.com/sessionauth/caddy-sessionauth/internal/webauthntest"
	"github.com/sessionauth/caddy-sessionauth/session"
)

// passkeyHandler is stepUpHandler with passkeys on: the site is
// http://example.com (httptest's Host), its rp_id example.com.
func passkeyHandler(t *testing.T, uv string, store ...*StoreConfig) (*Handler, func() time.Time, func(time.Duration)) {
	t.Helper()
	hash, _ := bcrypt.GenerateFromPassword([]byte("demo"), bcrypt.MinCost)
	h, clock := testHandler(t, func(h *Handler) {
		if len(store) > 0 {
			h.Store = store[0]
		}
		h.SignIn = &SignIn{Accounts: []*Account{
			{User: "alice", Hash: string(hash), Name: "Alice", Email: "alice@example.com", Roles: []string{"admin"}},
			{User: "carol", Hash: string(hash)},
		}, Passkeys: &PasskeysConfig{UserVerification: uv}}
	})
	return h, clock.Now, clock.Advance
}

// jsonPost posts body to an endpoint as passkeys.js does.
func (c *formClient) jsonPost(target, csrf string, body []byte) *httptest.ResponseRecorder {
	c.t.Helper()
	r := httptest.NewRequest("POST", target, bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("X-CSRF-Token", csrf)
	r.Header.Set("Origin", "http://example.com")
	r.Header.Set("Sec-Fetch-Site", "same-origin")
	return c.do(r, nil)
}

// addPasskey registers k for the signed-in client through the passkeys
// page's endpoints.
func (c *formClient) addPasskey(k *webauthntest.SoftKey) *httptest.ResponseRecorder {
	c.t.Helper()
	page := c.get("/.auth/account/passkeys")
	csrf := page.Header().Get("X-CSRF-Token")
	begin := c.jsonPost("/.auth/passkeys/register/begin", csrf, []byte("{}"))
	if begin.Code != http.StatusOK {
		return begin
	}
	return c.jsonPost("/.auth/passkeys/register/finish", csrf, k.Create(begin.Body.Bytes()))
}

// passkeySignIn signs in with k from the sign-in page's button.
func (c *formClient) passkeySignIn(k *webauthntest.SoftKey, query string) *httptest.ResponseRecorder {
	c.t.Helper()
	page := c.get("/.auth/sign-in?next=%2Fadmin")
	csrf := field(page.Body.String(), "csrf")
	begin := c.jsonPost("/.auth/passkeys/login/begin"+query, csrf, []byte("{}"))
	if begin.Code != http.StatusOK {
		c.t.Fatalf("login begin: %d %s", begin.Code, begin.Body)
	}
	return c.jsonPost("/.auth/passkeys/login/finish"+query, csrf, k.Get(begin.Body.Bytes()))
}

func passkeyError(w *httptest.ResponseRecorder) string {
	var a passkeyAnswer
	_ = json.Unmarshal(w.Body.Bytes(), &a)
	return a.Error
}

// The whole way: a password sign-in adds a passkey on the passkeys page
// (an audit event, listed with its name); another browser signs in with
// it and no user name, and the upstream sees X-Auth-Method passkey and
// the account's identity; the sign count and last use are stored.
// On the file store and on a real Redis.
func TestPasskeyRegisterAndSignIn(t *testing.T) {
	t.Run("file", func(t *testing.T) { testPasskeyRegisterAndSignIn(t) })
	t.Run("redis", func(t *testing.T) {
		testPasskeyRegisterAndSignIn(t, &StoreConfig{Type: "redis", URL: "redis://" + redisserver.Start(t).Addr})
	})
}

func testPasskeyRegisterAndSignIn(t *testing.T, store ...*StoreConfig) {
	h, now, _ := passkeyHandler(t, "", store...)
	c := &formClient{t: t, h: h, ip: "192.0.2.10", cookies: map[string]*http.Cookie{}}
	c.signIn("alice", nil)
	page := c.get("/.auth/account/passkeys")
	body := page.Body.String()
	if page.Code != 200 || !strings.Contains(body, "No passkeys yet.") || !strings.Contains(body, `data-passkey="register"`) ||
		!strings.Contains(body, `<script src="/.auth/passkeys.js" defer></script>`) ||
		!strings.Contains(page.Header().Get("Content-Security-Policy"), "script-src 'self'") {
		t.Fatalf("passkeys page: %d %v %s", page.Code, page.Header(), body)
	}
	k := webauthntest.New(t, "example.com", "http://example.com")
	if w := c.addPasskey(k); w.Code != http.StatusCreated {
		t.Fatalf("register: %d %s", w.Code, w.Body)
	}
	page = c.get("/.auth/account/passkeys")
	if !strings.Contains(page.Body.String(), `aria-label="Passkey `) || !strings.Contains(page.Body.String(), "Last used never") {
		t.Fatalf("after adding: %s", page.Body)
	}
	evs, _ := h.store.Events(context.Background(), "alice", time.Time{}, 0)
	if len(evs) == 0 || evs[0].Type != eventPasskeyAdded {
		t.Fatalf("events %+v", evs)
	}

	// The same browser, signed out (its device cookie kept: no_risk stays quiet).
	other := &formClient{t: t, h: h, ip: c.ip, cookies: map[string]*http.Cookie{}}
	for name, k := range c.cookies {
		if name != "session" {
			other.cookies[name] = k
		}
	}
	signInPage := other.get("/.auth/sign-in")
	if !strings.Contains(signInPage.Body.String(), "Sign in with a passkey") {
		t.Fatalf("sign-in page lacks the passkey button: %s", signInPage.Body)
	}
	w := other.passkeySignIn(k, "?next=%2Fadmin")
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"location":"/admin"`) || other.cookies["session"] == nil {
		t.Fatalf("passkey sign-in: %d %s", w.Code, w.Body)
	}
	seen, a := other.admin()
	if seen == nil || seen.Get("X-Auth-Method") != "passkey" || seen.Get("X-Auth-User") != "alice" || seen.Get("X-Auth-Email") != "alice@example.com" {
		t.Fatalf("upstream after a passkey sign-in: %d %v", a.Code, seen)
	}
	st, _ := accountsPartOf(h.store)
	rec, err := st.GetAccount(context.Background(), "alice")
	if err != nil || len(rec.Passkeys) != 1 || rec.Passkeys[0].SignCount != 1 || !rec.Passkeys[0].LastUsedAt.Equal(now().UTC()) || rec.Stored {
		t.Fatalf("record %+v %v", rec, err)
	}
}

// Refusals: a replayed answer, a passkey that did not verify the person
// (a first factor only: refused, not a sign-in), a sign count that went
// back (cloned: refused, flagged on the page), a request without the
// sign-in page's CSRF token or from another site.
func TestPasskeySignInRefusals(t *testing.T) {
	h, _, _ := passkeyHandler(t, "")
	c := &formClient{t: t, h: h, ip: "192.0.2.10", cookies: map[string]*http.Cookie{}}
	c.signIn("alice", nil)
	k := webauthntest.New(t, "example.com", "http://example.com")
	if w := c.addPasskey(k); w.Code != http.StatusCreated {
		t.Fatalf("register: %d %s", w.Code, w.Body)
	}

	b := &formClient{t: t, h: h, ip: "198.51.100.7", cookies: map[string]*http.Cookie{}}
	page := b.get("/.auth/sign-in")
	csrf := field(page.Body.String(), "csrf")
	if w := b.jsonPost("/.auth/passkeys/login/begin", "wrong", []byte("{}")); w.Code != http.StatusForbidden {
		t.Fatalf("without the CSRF token: %d", w.Code)
	}
	r := httptest.NewRequest("POST", "/.auth/passkeys/login/begin", strings.NewReader("{}"))
	r.Header.Set("X-CSRF-Token", csrf)
	r.Header.Set("Origin", "https://evil.example")
	if w := b.do(r, nil); w.Code != http.StatusForbidden {
		t.Fatalf("cross-site: %d", w.Code)
	}
	begin := b.jsonPost("/.auth/passkeys/login/begin", csrf, []byte("{}"))
	answer := k.Get(begin.Body.Bytes())
	saved := b.cookies["session_passkey"]
	if w := b.jsonPost("/.auth/passkeys/login/finish", csrf, answer); w.Code != 200 {
		t.Fatalf("sign-in: %d %s", w.Code, w.Body)
	}
	b.cookies["session_passkey"] = saved
	if w := b.jsonPost("/.auth/passkeys/login/finish", csrf, answer); w.Code != http.StatusBadRequest || passkeyError(w) != "passkey_expired" {
		t.Fatalf("replayed: %d %s", w.Code, w.Body)
	}

	k.UV = false
	d := &formClient{t: t, h: h, ip: "198.51.100.8", cookies: map[string]*http.Cookie{}}
	if w := d.passkeySignIn(k, ""); w.Code != http.StatusForbidden || passkeyError(w) != "user_verification_required" || d.cookies["session"] != nil {
		t.Fatalf("without user verification: %d %s", w.Code, w.Body)
	}
	k.UV = true

	k.Count = 0 // stored count is 2 now: the next assertion says 1
	if w := d.passkeySignIn(k, ""); w.Code != http.StatusForbidden || passkeyError(w) != "passkey_cloned" || d.cookies["session"] != nil {
		t.Fatalf("cloned: %d %s", w.Code, w.Body)
	}
	if p := c.get("/.auth/account/passkeys"); !strings.Contains(p.Body.String(), "a copy of it may exist") {
		t.Fatalf("the page does not flag the cloned passkey: %s", p.Body)
	}
	evs, _ := h.store.Events(context.Background(), "alice", time.Time{}, 0)
	if !slices.ContainsFunc(evs, func(e session.Event) bool { return e.Type == session.EventLoginFailed && e.Reason == "passkey_cloned" }) ||
		!slices.ContainsFunc(evs, func(e session.Event) bool {
			return e.Type == session.EventLoginFailed && e.Reason == "passkey_unverified"
		}) {
		t.Fatalf("events %+v", evs)
	}
}

// Wrong assertions count like wrong codes: past 10 in the window the
// account's passkey sign-ins are refused (429), even a right one.
func TestPasskeyWrongAssertionsCountLikeCodes(t *testing.T) {
	h, _, _ := passkeyHandler(t, "")
	c := &formClient{t: t, h: h, ip: "192.0.2.10", cookies: map[string]*http.Cookie{}}
	c.signIn("alice", nil)
	k := webauthntest.New(t, "example.com", "http://example.com")
	if w := c.addPasskey(k); w.Code != http.StatusCreated {
		t.Fatalf("register: %d %s", w.Code, w.Body)
	}
	for i := range codeLimit.count {
		b := &formClient{t: t, h: h, ip: fmt.Sprintf("198.51.100.%d", i+20), cookies: map[string]*http.Cookie{}} // login_rate counts per address
		page := b.get("/.auth/sign-in")
		csrf := field(page.Body.String(), "csrf")
		b.jsonPost("/.auth/passkeys/login/begin", csrf, []byte("{}"))
		wrong := k.GetWith("bm90LXRoZS1jaGFsbGVuZ2U") // signed over another challenge
		if w := b.jsonPost("/.auth/passkeys/login/finish", csrf, wrong); w.Code != http.StatusBadRequest || passkeyError(w) != "passkey_refused" {
			t.Fatalf("wrong assertion %d: %d %s", i, w.Code, w.Body)
		}
	}
	b := &formClient{t: t, h: h, ip: "198.51.100.9", cookies: map[string]*http.Cookie{}}
	if w := b.passkeySignIn(k, ""); w.Code != http.StatusTooManyRequests || b.cookies["session"] != nil {
		t.Fatalf("past the limit: %d %s", w.Code, w.Body)
	}
}

// Adding or removing a passkey needs a sign-in within 10 minutes: else
// the step-up comes first, and a passkey confirms it, keeping the
// session. Removing works without script, and is an audit event.
func TestPasskeyStepUpAndRemove(t *testing.T) {
	h, _, advance := passkeyHandler(t, "")
	c := &formClient{t: t, h: h, ip: "192.0.2.10", cookies: map[string]*http.Cookie{}}
	c.signIn("alice", nil)
	k := webauthntest.New(t, "example.com", "http://example.com")
	if w := c.addPasskey(k); w.Code != http.StatusCreated {
		t.Fatalf("register: %d %s", w.Code, w.Body)
	}
	id := c.sessionID()
	advance(11 * time.Minute)
	k2 := webauthntest.New(t, "example.com", "http://example.com")
	if w := c.addPasskey(k2); w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), `"location":"/.auth/sign-in?step_up=1`) {
		t.Fatalf("stale add: %d %s", w.Code, w.Body)
	}
	page := c.get("/.auth/account/passkeys").Body.String()
	csrf := field(page, "csrf")
	_, rest, _ := strings.Cut(page, `action="/.auth/account/passkeys/`)
	credID, _, _ := strings.Cut(rest, "/")
	remove := func() *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", "/.auth/account/passkeys/"+credID+"/remove", strings.NewReader(url.Values{"csrf": {csrf}}.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return c.do(r, nil)
	}
	if w := remove(); w.Code != http.StatusSeeOther || !strings.HasPrefix(w.Header().Get("Location"), "/.auth/sign-in?step_up=1") {
		t.Fatalf("stale remove: %d %q", w.Code, w.Header().Get("Location"))
	}
	stepUp := c.get("/.auth/sign-in?step_up=1&next=%2F.auth%2Faccount%2Fpasskeys").Body.String()
	if !strings.Contains(stepUp, "Confirm with a passkey") {
		t.Fatalf("step-up page lacks the passkey button: %s", stepUp)
	}
	begin := c.jsonPost("/.auth/passkeys/login/begin?step_up=1", field(stepUp, "csrf"), []byte("{}"))
	w := c.jsonPost("/.auth/passkeys/login/finish?step_up=1&next=%2F.auth%2Faccount%2Fpasskeys", field(stepUp, "csrf"), k.Get(begin.Body.Bytes()))
	if w.Code != 200 || c.sessionID() != id {
		t.Fatalf("passkey step-up: %d %s (session %s, was %s)", w.Code, w.Body, c.sessionID(), id)
	}
	if w := remove(); w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/.auth/account/passkeys" {
		t.Fatalf("remove: %d %q %s", w.Code, w.Header().Get("Location"), w.Body)
	}
	if p := c.get("/.auth/account/passkeys").Body.String(); !strings.Contains(p, "No passkeys yet.") {
		t.Fatalf("after removing: %s", p)
	}
	evs, _ := h.store.Events(context.Background(), "alice", time.Time{}, 0)
	if len(evs) == 0 || evs[0].Type != eventPasskeyRemoved {
		t.Fatalf("events %+v", evs)
	}
	if w := remove(); w.Code != http.StatusNotFound {
		t.Fatalf("removing it again: %d", w.Code)
	}
}

// The script is served cacheable as JavaScript; without passkeys its
// route and the button are not there.
func TestPasskeyScriptAndOff(t *testing.T) {
	h, _, _ := passkeyHandler(t, "")
	c := &formClient{t: t, h: h, ip: "192.0.2.10", cookies: map[string]*http.Cookie{}}
	w := c.get("/.auth/passkeys.js")
	if w.Code != 200 || w.Header().Get("Content-Type") != "text/javascript; charset=utf-8" ||
		!strings.Contains(w.Header().Get("Cache-Control"), "max-age") || !strings.Contains(w.Body.String(), "navigator.credentials.get") {
		t.Fatalf("script: %d %v", w.Code, w.Header())
	}
	off, _ := stepUpHandler(t)
	d := &formClient{t: t, h: off, ip: "192.0.2.10", cookies: map[string]*http.Cookie{}}
	if w := d.get("/.auth/passkeys.js"); w.Code != http.StatusNotFound {
		t.Fatalf("script without passkeys: %d", w.Code)
	}
	if p := d.get("/.auth/sign-in").Body.String(); strings.Contains(p, "passkey") || strings.Contains(p, "<script") {
		t.Fatalf("sign-in page without passkeys: %s", p)
	}
}

// After a password, an account with a passkey gets the second step (the
// password alone signs nobody in); its "Use a passkey" signs in as
// password+passkey. A wrong passkey keeps the step for another try.
func TestPasskeySecondFactor(t *testing.T) {
	h, _, _ := passkeyHandler(t, "")
	c := &formClient{t: t, h: h, ip: "192.0.2.10", cookies: map[string]*http.Cookie{}}
	c.signIn("alice", nil)
	k := webauthntest.New(t, "example.com", "http://example.com")
	if w := c.addPasskey(k); w.Code != http.StatusCreated {
		t.Fatalf("register: %d %s", w.Code, w.Body)
	}
	delete(c.cookies, "session")
	p := c.get("/.auth/sign-in?next=%2Fadmin")
	w := c.post(url.Values{"csrf": {field(p.Body.String(), "csrf")}, "next": {"/admin"}, "username": {"alice"}, "password": {"demo"}, "code": {"123456"}})
	body := w.Body.String()
	pending := field(body, "pending")
	if w.Code != 200 || pending == "" || !strings.Contains(body, "Use a passkey") || !strings.Contains(body, `data-pending="`+pending+`"`) || c.cookies["session"] != nil {
		t.Fatalf("password of an account with a passkey: %d %s", w.Code, body)
	}
	csrf := field(body, "csrf")
	q := "?next=%2Fadmin&pending=" + pending
	begin := c.jsonPost("/.auth/passkeys/second/begin"+q, csrf, []byte("{}"))
	if begin.Code != 200 || !strings.Contains(begin.Body.String(), "allowCredentials") {
		t.Fatalf("second begin: %d %s", begin.Code, begin.Body)
	}
	if w := c.jsonPost("/.auth/passkeys/second/finish"+q, csrf, k.GetWith("bm90LXRoZS1jaGFsbGVuZ2U")); w.Code != http.StatusBadRequest || c.cookies["session"] != nil {
		t.Fatalf("wrong passkey: %d %s", w.Code, w.Body)
	}
	begin = c.jsonPost("/.auth/passkeys/second/begin"+q, csrf, []byte("{}"))
	w = c.jsonPost("/.auth/passkeys/second/finish"+q, csrf, k.Get(begin.Body.Bytes()))
	if w.Code != 200 || c.cookies["session"] == nil {
		t.Fatalf("second step: %d %s", w.Code, w.Body)
	}
	if seen, a := c.admin(); seen == nil || seen.Get("X-Auth-Method") != "password+passkey" {
		t.Fatalf("upstream: %d %v", a.Code, seen)
	}
	if w := c.jsonPost("/.auth/passkeys/second/begin"+q, csrf, []byte("{}")); w.Code != http.StatusBadRequest {
		t.Fatalf("the step again after signing in: %d %s", w.Code, w.Body)
	}
}

// The Caddyfile's passkeys block inside sign_in: its two settings, and a
// clear error with the file and line for anything else.
func TestPasskeyCaddyfile(t *testing.T) {
	const accts = "    accounts {\n      alice $2a$04$7/ZbNn1hVdN3ID7uhTOTcu2ZcsolP3E2a9PqJQYNHflMcgNgdq5Xa\n    }\n"
	var h Handler
	in := "session_auth {\n  sign_in {\n" + accts + "    passkeys {\n      rp_id example.com\n      user_verification required\n    }\n  }\n}"
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(in)); err != nil {
		t.Fatal(err)
	}
	if pk := h.SignIn.Passkeys; pk == nil || pk.RPID != "example.com" || pk.UserVerification != "required" {
		t.Fatalf("passkeys %+v", h.SignIn.Passkeys)
	}
	var on Handler
	if err := on.UnmarshalCaddyfile(caddyfile.NewTestDispenser("session_auth {\n  sign_in {\n" + accts + "    passkeys\n  }\n}")); err != nil || on.SignIn.Passkeys == nil {
		t.Fatalf("a bare passkeys: %v %+v", err, on.SignIn)
	}
	for block, want := range map[string]string{
		"passkeys {\n      user_verification discouraged\n    }": "user_verification must be required or preferred",
		"passkeys {\n      rp_id https://example.com/\n    }":    "rp_id must be a domain name",
		"passkeys {\n      rp_id 192.0.2.1\n    }":               "rp_id must be a domain name",
		"passkeys {\n      colour blue\n    }":                   `passkeys: unknown subdirective "colour"`,
		"passkeys on":                                            "wrong argument count",
		"passkeys\n    passkeys":                                 "passkeys given more than once",
	} {
		var h Handler
		err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("session_auth {\n  sign_in {\n" + accts + "    " + block + "\n  }\n}"))
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "Testfile:") {
			t.Errorf("%q: error %v, want %q with file:line", block, err, want)
		}
	}
}

// Renaming works without script and without a recent sign-in; the page's
// JSON lists the passkey by its new name. Another site cannot add one.
func TestPasskeyRenameAndJSON(t *testing.T) {
	h, _, advance := passkeyHandler(t, "")
	c := &formClient{t: t, h: h, ip: "192.0.2.10", cookies: map[string]*http.Cookie{}}
	c.signIn("alice", nil)
	k := webauthntest.New(t, "example.com", "http://example.com")
	if w := c.addPasskey(k); w.Code != http.StatusCreated {
		t.Fatalf("register: %d %s", w.Code, w.Body)
	}
	advance(time.Hour)
	page := c.get("/.auth/account/passkeys").Body.String()
	_, rest, _ := strings.Cut(page, `action="/.auth/account/passkeys/`)
	credID, _, _ := strings.Cut(rest, "/")
	r := httptest.NewRequest("POST", "/.auth/account/passkeys/"+credID+"/rename",
		strings.NewReader(url.Values{"csrf": {field(page, "csrf")}, "name": {"Work <laptop>"}}.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if w := c.do(r, nil); w.Code != http.StatusSeeOther {
		t.Fatalf("rename: %d %s", w.Code, w.Body)
	}
	r = httptest.NewRequest("GET", "/.auth/account/passkeys", nil)
	for _, k := range c.cookies {
		r.AddCookie(k)
	}
	r.Header.Set("Accept", "application/json")
	r.Header.Set("Test-Client-IP", c.ip)
	w := serve(t, h, r, &upstream{})
	var list []struct{ ID, Name string }
	if err := json.Unmarshal(w.Body.Bytes(), &list); err != nil || len(list) != 1 || list[0].Name != "Work <laptop>" || list[0].ID != credID {
		t.Fatalf("JSON: %d %s %v", w.Code, w.Body, err)
	}
	r = httptest.NewRequest("POST", "/.auth/passkeys/register/begin", strings.NewReader("{}"))
	r.Header.Set("X-CSRF-Token", field(page, "csrf"))
	r.Header.Set("Sec-Fetch-Site", "cross-site")
	if w := c.do(r, nil); w.Code != http.StatusForbidden {
		t.Fatalf("cross-site register: %d", w.Code)
	}
}
