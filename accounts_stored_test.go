package sessionauth

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"golang.org/x/crypto/bcrypt"

	"github.com/sessionauth/caddy-sessionauth/accounts"
	"github.com/sessionauth/caddy-sessionauth/session/storetest"
)

// storedHandler has stored accounts and no Caddyfile account.
func storedHandler(t *testing.T, configure func(*Handler)) (*Handler, *storetest.Clock) {
	t.Helper()
	return testHandler(t, func(h *Handler) {
		h.SignIn = &SignIn{Stored: true}
		if configure != nil {
			configure(h)
		}
	})
}

// adminDo calls the admin API as Caddy's admin endpoint would, its
// errors as their status and JSON.
func adminDo(t *testing.T, method, target, body string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	w := httptest.NewRecorder()
	if err := (adminAPI{}).serve(w, r); err != nil {
		var api caddy.APIError
		if !errors.As(err, &api) {
			t.Fatalf("%s %s: %v", method, target, err)
		}
		w.Code = api.HTTPStatus
		_ = json.NewEncoder(w.Body).Encode(map[string]string{"error": api.Err.Error()})
	}
	return w
}

func newClient(t *testing.T, h *Handler) *formClient {
	return &formClient{t: t, h: h, ip: "192.0.2.44", cookies: map[string]*http.Cookie{}}
}

func (c *formClient) postTo(path string, form url.Values) *httptest.ResponseRecorder {
	c.t.Helper()
	r := httptest.NewRequest("POST", path, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return c.do(r, nil)
}

// whoAmI is the user and method the upstream sees for c ("" when the
// request does not get through).
func (c *formClient) whoAmI() (string, string) {
	c.t.Helper()
	r := httptest.NewRequest("GET", "/app", nil)
	for _, k := range c.cookies {
		r.AddCookie(k)
	}
	r.Header.Set("Test-Client-IP", c.ip)
	up := &upstream{}
	serve(c.t, c.h, r, up) // no session_require: the session alone
	if up.calls == 0 {
		return "", ""
	}
	return up.header.Get("X-Auth-User"), up.header.Get("X-Auth-Method")
}

func (c *formClient) signInWith(user, password string) *httptest.ResponseRecorder {
	c.t.Helper()
	p := c.get("/.auth/sign-in")
	return c.post(url.Values{"csrf": {field(p.Body.String(), "csrf")}, "next": {"/app"}, "username": {user}, "password": {password}})
}

func createAccount(t *testing.T, body string) inviteJSON {
	t.Helper()
	w := adminDo(t, "POST", "/session-auth/accounts", body)
	if w.Code != http.StatusCreated {
		t.Fatalf("create: %d %s", w.Code, w.Body)
	}
	var inv inviteJSON
	if err := json.Unmarshal(w.Body.Bytes(), &inv); err != nil {
		t.Fatal(err)
	}
	return inv
}

func getAccount(t *testing.T, user string) (adminAccountJSON, int) {
	t.Helper()
	w := adminDo(t, "GET", "/session-auth/accounts/"+user, "")
	var a adminAccountJSON
	_ = json.Unmarshal(w.Body.Bytes(), &a)
	return a, w.Code
}

// An account made on the admin API is activated once by its invitation
// (a GET, as a link preview makes, spends nothing), signs in with the
// password it chose, and is refused once disabled, its sessions and API
// tokens ended. On the file, memory and Redis stores.
func TestAccountInviteSignInDisable(t *testing.T) {
	tokenStores(t, func(h *Handler) {
		h.SignIn = &SignIn{Stored: true}
		h.BaseURL = "https://app.example.com"
	}, testAccountInviteSignInDisable)
}

func testAccountInviteSignInDisable(t *testing.T, h *Handler, _ *storetest.Clock) {
	inv := createAccount(t, `{"user_id":"dana","email":"dana@example.com","name":"Dana","roles":["ops","dev"]}`)
	if !strings.HasPrefix(inv.Invite, "/.auth/invite?token=") || inv.InviteURL != "https://app.example.com"+inv.Invite || inv.ExpiresAt == "" {
		t.Fatalf("invite: %+v", inv)
	}
	if w := adminDo(t, "POST", "/session-auth/accounts", `{"user_id":"dana"}`); w.Code != http.StatusConflict {
		t.Fatalf("same user id again: %d %s", w.Code, w.Body)
	}
	for _, bad := range []string{`{"user_id":""}`, `{"user_id":"x","roles":7}`, `{"user_id":"x","extra":1}`, `not json`} {
		if w := adminDo(t, "POST", "/session-auth/accounts", bad); w.Code != http.StatusBadRequest {
			t.Errorf("create %s: %d %s", bad, w.Code, w.Body)
		}
	}
	a, code := getAccount(t, "dana")
	if code != 200 || a.Password || a.Email != "dana@example.com" || len(a.Roles) != 2 || a.LastSignInAt != nil {
		t.Fatalf("new account: %d %+v", code, a)
	}

	c := newClient(t, h)
	for range 2 { // a preview, then the person
		if w := c.get(inv.Invite); w.Code != 200 || !strings.Contains(w.Body.String(), `value="dana"`) {
			t.Fatalf("invitation page: %d %s", w.Code, w.Body)
		}
	}
	page := c.get(inv.Invite).Body.String()
	form := url.Values{"csrf": {field(page, "csrf")}, "token": {field(page, "token")}, "password": {"short"}, "confirm": {"short"}}
	if w := c.postTo("/.auth/invite", form); w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "at least 8") {
		t.Fatalf("short password: %d %s", w.Code, w.Body)
	}
	form.Set("password", "correct horse")
	form.Set("confirm", "correct horse")
	cross := httptest.NewRequest("POST", "/.auth/invite", strings.NewReader(form.Encode()))
	cross.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	cross.Header.Set("Sec-Fetch-Site", "cross-site")
	if w := c.do(cross, nil); w.Code != http.StatusForbidden {
		t.Fatalf("cross-site invitation post: %d", w.Code)
	}
	if w := c.postTo("/.auth/invite", form); w.Code != http.StatusSeeOther {
		t.Fatalf("set password: %d %s", w.Code, w.Body)
	}
	if u, m := c.whoAmI(); u != "dana" || m != "password" {
		t.Fatalf("after the invitation: %q %q", u, m)
	}
	if w := c.postTo("/.auth/invite", form); w.Code != http.StatusGone || !strings.Contains(w.Body.String(), "expired or was used") {
		t.Fatalf("second use: %d %s", w.Code, w.Body)
	}
	if w := c.get(inv.Invite); w.Code != http.StatusGone {
		t.Fatalf("used invitation's page: %d", w.Code)
	}

	other := newClient(t, h)
	if w := other.signInWith("dana", "wrong password"); w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), "Wrong user name or password") {
		t.Fatalf("wrong password: %d", w.Code)
	}
	if w := other.signInWith("dana", "correct horse"); w.Code != http.StatusSeeOther {
		t.Fatalf("password sign-in: %d %s", w.Code, w.Body)
	}
	if u, m := other.whoAmI(); u != "dana" || m != "password" {
		t.Fatalf("signed in: %q %q", u, m)
	}
	if a, _ := getAccount(t, "dana"); !a.Password || a.LastSignInAt == nil {
		t.Fatalf("after sign-in: %+v", a)
	}
	tok := mustToken(t, h, other.cookies["session"], other.ip, "ci")
	bearer := func() int {
		up := &upstream{}
		serve(t, h, withBearer("/api", tok.Token, other.ip), up)
		return up.calls
	}
	if bearer() != 1 {
		t.Fatal("the account's API token does not work")
	}

	w := adminDo(t, "PATCH", "/session-auth/accounts/dana", `{"disabled":true,"name":"Dana D."}`)
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"disabled":true`) || !strings.Contains(w.Body.String(), `"Dana D."`) {
		t.Fatalf("disable: %d %s", w.Code, w.Body)
	}
	for _, cl := range []*formClient{c, other} {
		if u, _ := cl.whoAmI(); u != "" {
			t.Fatal("a disabled account's session still works")
		}
	}
	if bearer() != 0 {
		t.Fatal("a disabled account's API token still works")
	}
	if w := newClient(t, h).signInWith("dana", "correct horse"); w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), "Wrong user name or password") {
		t.Fatalf("disabled sign-in: %d", w.Code)
	}
	adminDo(t, "PATCH", "/session-auth/accounts/dana", `{"disabled":false}`)
	if w := newClient(t, h).signInWith("dana", "correct horse"); w.Code != http.StatusSeeOther {
		t.Fatalf("enabled again: %d", w.Code)
	}
	if w := adminDo(t, "PATCH", "/session-auth/accounts/dana", `{"colour":"blue"}`); w.Code != http.StatusBadRequest {
		t.Fatalf("unknown field: %d", w.Code)
	}
	if w := adminDo(t, "PATCH", "/session-auth/accounts/nobody", `{"disabled":true}`); w.Code != http.StatusNotFound {
		t.Fatalf("unknown account: %d", w.Code)
	}
}

// An invitation works within 7 days only.
func TestInviteExpires(t *testing.T) {
	h, clock := storedHandler(t, nil)
	inv := createAccount(t, `{"user_id":"erin"}`)
	clock.Advance(7*24*time.Hour + time.Second)
	if w := newClient(t, h).get(inv.Invite); w.Code != http.StatusGone || !strings.Contains(w.Body.String(), "expired") {
		t.Fatalf("expired invitation: %d %s", w.Code, w.Body)
	}
	if w := newClient(t, h).get("/.auth/invite?token=nonsense"); w.Code != http.StatusGone {
		t.Fatalf("unknown token: %d", w.Code)
	}
}

// A reset ends the sessions, removes the password (and with
// second_factor the TOTP) and gives a new invitation; DELETE removes the
// account and ends its sessions.
func TestAccountResetAndDelete(t *testing.T) {
	h, _ := storedHandler(t, nil)
	inv := createAccount(t, `{"user_id":"finn"}`)
	c := newClient(t, h)
	page := c.get(inv.Invite).Body.String()
	c.postTo("/.auth/invite", url.Values{"csrf": {field(page, "csrf")}, "token": {field(page, "token")}, "password": {"first password"}, "confirm": {"first password"}})
	if u, _ := c.whoAmI(); u != "finn" {
		t.Fatal("not signed in by the invitation")
	}
	w := adminDo(t, "POST", "/session-auth/accounts/finn/reset", `{"second_factor":true}`)
	if w.Code != 200 || !strings.Contains(w.Body.String(), "/.auth/invite?token=") {
		t.Fatalf("reset: %d %s", w.Code, w.Body)
	}
	if u, _ := c.whoAmI(); u != "" {
		t.Fatal("a reset account's session still works")
	}
	if a, _ := getAccount(t, "finn"); a.Password {
		t.Fatal("the password stayed after a reset")
	}
	if w := newClient(t, h).signInWith("finn", "first password"); w.Code != http.StatusUnauthorized {
		t.Fatalf("old password after reset: %d", w.Code)
	}
	var again inviteJSON
	_ = json.Unmarshal(w.Body.Bytes(), &again)
	c2 := newClient(t, h)
	page = c2.get(again.Invite).Body.String()
	if w := c2.postTo("/.auth/invite", url.Values{"csrf": {field(page, "csrf")}, "token": {field(page, "token")}, "password": {"second password"}, "confirm": {"second password"}}); w.Code != http.StatusSeeOther {
		t.Fatalf("reset invitation: %d %s", w.Code, w.Body)
	}

	if w := adminDo(t, "DELETE", "/session-auth/accounts/finn", ""); w.Code != 200 || !strings.Contains(w.Body.String(), `"revoked":["`) {
		t.Fatalf("delete: %d %s", w.Code, w.Body)
	}
	if u, _ := c2.whoAmI(); u != "" {
		t.Fatal("a deleted account's session still works")
	}
	if _, code := getAccount(t, "finn"); code != http.StatusNotFound {
		t.Fatalf("deleted account: %d", code)
	}
	var evs []struct{ Type, Actor string }
	_ = json.Unmarshal(adminDo(t, "GET", "/session-auth/users/finn/events", "").Body.Bytes(), &evs)
	var types []string
	for _, e := range evs {
		types = append(types, e.Type+"/"+e.Actor)
	}
	for _, want := range []string{"account_created/admin", "account_activated/self", "password_reset/admin", "account_deleted/admin"} {
		if !slices.Contains(types, want) {
			t.Errorf("no %s event among %v", want, types)
		}
	}
	if w := newClient(t, h).signInWith("finn", "second password"); w.Code != http.StatusUnauthorized {
		t.Fatalf("deleted account's sign-in: %d", w.Code)
	}
}

// GET /session-auth/accounts pages as section 6 says.
func TestAccountListPages(t *testing.T) {
	hash, _ := bcrypt.GenerateFromPassword([]byte("demo"), bcrypt.MinCost)
	h, _ := storedHandler(t, func(h *Handler) { h.SignIn.Accounts = []*Account{{User: "op", Hash: string(hash)}} })
	if w := adminDo(t, "POST", "/session-auth/accounts", `{"user_id":"op"}`); w.Code != http.StatusConflict {
		t.Fatalf("an operator's user id: %d %s", w.Code, w.Body)
	}
	for _, u := range []string{"gus", "hal", "ivy"} {
		createAccount(t, `{"user_id":"`+u+`"}`)
	}
	var got []string
	target := "/session-auth/accounts?limit=2"
	for pages := 0; target != ""; pages++ {
		if pages > 3 {
			t.Fatal("pages never end")
		}
		w := adminDo(t, "GET", target, "")
		var list []adminAccountJSON
		if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &list) != nil {
			t.Fatalf("list: %d %s", w.Code, w.Body)
		}
		for _, a := range list {
			got = append(got, a.UserID)
		}
		target = ""
		if link := w.Header().Get("Link"); link != "" {
			target = strings.TrimSuffix(strings.TrimPrefix(link, "<"), `>; rel="next"`)
		}
	}
	if strings.Join(got, ",") != "gus,hal,ivy" {
		t.Fatalf("listed %v", got)
	}
	if !h.signIn.hasAccount("gus") || h.signIn.hasAccount("nobody") {
		t.Fatal("a provider's sign-in could take a stored account's user id")
	}
	if w := adminDo(t, "GET", "/session-auth/accounts?cursor=Zm9v", ""); w.Code != http.StatusBadRequest {
		t.Fatalf("bad cursor: %d", w.Code)
	}
}

// `accounts { stored }` and `second_factor` in the Caddyfile; mistakes
// name their line.
func TestAccountsStoredCaddyfile(t *testing.T) {
	h := &Handler{}
	input := "session_auth {\n  sign_in {\n    accounts {\n      stored\n    }\n    second_factor required\n  }\n}"
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input)); err != nil {
		t.Fatal(err)
	}
	if !h.SignIn.Stored || h.SignIn.SecondFactor != "required" || len(h.SignIn.Accounts) != 0 {
		t.Fatalf("parsed %+v", h.SignIn)
	}
	for _, bad := range []struct{ input, want string }{
		{"session_auth {\n  sign_in {\n    accounts {\n      stored\n      stored\n    }\n  }\n}", "Testfile:5"},
		{"session_auth {\n  sign_in {\n    accounts {\n      stored\n    }\n    second_factor always\n  }\n}", "Testfile:6"},
		{"session_auth {\n  sign_in {\n    accounts {\n      stored\n    }\n    second_factor\n  }\n}", "Testfile:6"},
		{"session_auth {\n  sign_in {\n    accounts {\n      stored\n    }\n    second_factor optional\n    second_factor required\n  }\n}", "Testfile:7"},
	} {
		err := (&Handler{}).UnmarshalCaddyfile(caddyfile.NewTestDispenser(bad.input))
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: %v", bad.input, err)
		}
	}
}

// second_factor required: an account without a second factor adds an
// authenticator app after its password, before it is signed in; a wrong
// first code shows the same key again; the next sign-in asks the code.
func TestAccountSecondFactorRequired(t *testing.T) {
	h, clock := storedHandler(t, func(h *Handler) { h.SignIn.SecondFactor = "required" })
	inv := createAccount(t, `{"user_id":"jo"}`)
	c := newClient(t, h)
	page := c.get(inv.Invite).Body.String()
	w := c.postTo("/.auth/invite", url.Values{"csrf": {field(page, "csrf")}, "token": {field(page, "token")}, "password": {"jo's password"}, "confirm": {"jo's password"}})
	if w.Code != 200 || c.cookies["session"] != nil || field(w.Body.String(), "enrol") == "" {
		t.Fatalf("after the password: %d, cookie %v: %s", w.Code, c.cookies["session"], w.Body)
	}
	if u, _ := c.whoAmI(); u != "" {
		t.Fatal("signed in before adding a second factor")
	}
	secret := func(body string) string {
		_, rest, _ := strings.Cut(body, `id="secret" value="`)
		v, _, _ := strings.Cut(rest, `"`)
		return v
	}
	key := secret(w.Body.String())
	if key == "" || !strings.Contains(w.Body.String(), "<svg") {
		t.Fatalf("no key or QR code: %s", w.Body)
	}
	wrong := url.Values{"csrf": {field(w.Body.String(), "csrf")}, "next": {"/"}, "enrol": {field(w.Body.String(), "enrol")}, "code": {"000000"}}
	if good, _ := accounts.TOTPCode(key, clock.Now()); good == "000000" {
		wrong.Set("code", "111111")
	}
	w = c.post(wrong)
	if w.Code != http.StatusUnauthorized || secret(w.Body.String()) != key || c.cookies["session"] != nil {
		t.Fatalf("wrong first code: %d %s", w.Code, w.Body)
	}
	code, _ := accounts.TOTPCode(key, clock.Now())
	w = c.post(url.Values{"csrf": {field(w.Body.String(), "csrf")}, "next": {"/"}, "enrol": {field(w.Body.String(), "enrol")}, "code": {code}})
	if w.Code != http.StatusSeeOther {
		t.Fatalf("first code: %d %s", w.Code, w.Body)
	}
	if u, m := c.whoAmI(); u != "jo" || m != "password+totp" {
		t.Fatalf("after adding the app: %q %q", u, m)
	}
	if a, _ := getAccount(t, "jo"); !a.TOTP {
		t.Fatal("the account has no TOTP")
	}
	clock.Advance(time.Minute)
	other := newClient(t, h)
	w = other.signInWith("jo", "jo's password")
	if w.Code != 200 || field(w.Body.String(), "pending") == "" || other.cookies["session"] != nil {
		t.Fatalf("next sign-in does not ask the code: %d %s", w.Code, w.Body)
	}
}
