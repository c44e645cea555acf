package integration

import (
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/sessionauth/caddy-sessionauth/internal/redisserver"
)

// Stored accounts (SPEC 15) through a real Caddy, on the file, memory and
// Redis stores. What needs the clock moved (an invitation's 7 days) is
// the root package's TestInviteExpiresOnEveryStore.

// storedSite is a site with stored accounts and API tokens on store.
func storedSite(store string) string {
	return site(store + "\napi_tokens\nsign_in {\n\taccounts {\n\t\tstored\n\t}\n}")
}

var (
	inviteLink   = regexp.MustCompile(`/\.auth/invite\?token=[A-Za-z0-9_-]+`)
	otpauthURI   = regexp.MustCompile(`id="uri" value="([^"]+)"`)
	recoveryCode = regexp.MustCompile(`<code>([a-z0-9]{5}-[a-z0-9]{5})</code>`)
)

// createStored creates user on the admin API and answers its invitation path.
func createStored(t *testing.T, g *gateway, body string) string {
	t.Helper()
	code, res := g.adminDo("POST", "/session-auth/accounts", body)
	var inv struct{ Invite, ExpiresAt string }
	if code != http.StatusCreated || json.Unmarshal([]byte(res), &inv) != nil || !inviteLink.MatchString(inv.Invite) {
		t.Fatalf("creating an account: %d %s", code, res)
	}
	return inv.Invite
}

// acceptInvite opens the invitation and chooses password there: the
// answer of the form.
func acceptInvite(t *testing.T, b *browser, invite, password string) page {
	t.Helper()
	p := b.get(invite)
	if p.status != http.StatusOK || p.field("token") == "" {
		t.Fatalf("invitation page: %d\n%s", p.status, p.body)
	}
	return b.post("/.auth/invite", url.Values{"csrf": {p.field("csrf")}, "token": {p.field("token")}, "password": {password}, "confirm": {password}})
}

// accountJSONOf is the account page as JSON (nil when not 200) and its status.
func accountJSONOf(t *testing.T, b *browser) (map[string]any, int) {
	t.Helper()
	p := b.get("/.auth/account", "Accept", "application/json")
	if p.status != http.StatusOK {
		return nil, p.status
	}
	var a map[string]any
	if err := json.Unmarshal([]byte(p.body), &a); err != nil {
		t.Fatalf("account JSON %q: %v", p.body, err)
	}
	return a, p.status
}

// reaches says whether b's session gets a request through to the app.
func reaches(b *browser) bool {
	b.t.Helper()
	return b.get("/app", "Accept", "application/json").status == http.StatusOK
}

// bearerReaches says whether an API token gets a request through.
func bearerReaches(t *testing.T, g *gateway, token string) bool {
	t.Helper()
	return newClient(t, g).do("GET", "/api", "Authorization", "Bearer "+token).StatusCode == http.StatusOK
}

// tokenOf makes an API token from b's session.
func tokenOf(t *testing.T, g *gateway, b *browser) string {
	t.Helper()
	c := newClient(t, g)
	u, _ := url.Parse(g.base)
	for _, k := range b.http.Jar.Cookies(u) {
		if k.Name == "session" {
			c.cookie = k.Value
		}
	}
	return createToken(t, c, `{"name":"ci"}`).Token
}

// The whole life of a stored account, on every store: the invitation
// works once; the admin API's and the account page's JSON carry SPEC 15's
// fields; an authenticator app is added with the code computed from the
// page's otpauth URI; recovery codes sign in once each; a password change
// ends the other sessions; forms without the CSRF token or from another
// origin change nothing; disabling and deleting end sessions and tokens.
func TestStoredAccountsOnEveryStore(t *testing.T) {
	stores(t, func(t *testing.T, store string, _ *redisserver.Server) {
		g := loadCaddy(t, storedSite(store), newUpstream(t))
		invite := createStored(t, g, `{"user_id":"nora","email":"nora@example.com","name":"Nora","roles":["ops","dev"]}`)

		// The invitation: a GET spends nothing, the form signs in once.
		first := newBrowser(t, g.base)
		if p := first.get(invite); p.status != http.StatusOK || !strings.Contains(p.body, `value="nora"`) {
			t.Fatalf("invitation preview: %d", p.status)
		}
		if p := acceptInvite(t, first, invite, "nora's first password"); p.status != http.StatusSeeOther {
			t.Fatalf("accepting: %d\n%s", p.status, p.body)
		}
		if h := first.upstreamSees("/app"); h["X-Auth-User"] != "nora" || h["X-Auth-Method"] != "password" || h["X-Auth-Roles"] != "ops,dev" {
			t.Fatalf("after the invitation the app sees %v", h)
		}
		if p := newBrowser(t, g.base).get(invite); p.status != http.StatusGone {
			t.Fatalf("the used invitation's page: %d", p.status)
		}

		// The account JSON, on the admin API and on the account page.
		fields := []string{"user_id", "email", "name", "roles", "password", "totp", "passkeys", "recovery_codes_left", "disabled", "created_at", "last_sign_in_at"}
		code, body := g.adminDo("GET", "/session-auth/accounts/nora", "")
		var admin map[string]any
		if code != http.StatusOK || json.Unmarshal([]byte(body), &admin) != nil {
			t.Fatalf("admin GET: %d %s", code, body)
		}
		for _, f := range fields {
			if _, ok := admin[f]; !ok {
				t.Errorf("the admin API's account lacks %q: %s", f, body)
			}
		}
		if admin["password"] != true || admin["totp"] != false || admin["passkeys"] != 0.0 || admin["email"] != "nora@example.com" ||
			admin["last_sign_in_at"] == nil || admin["disabled"] != false {
			t.Fatalf("admin account: %s", body)
		}
		mine, _ := accountJSONOf(t, first)
		if mine["user_id"] != "nora" || mine["password"] != true || mine["name"] != "Nora" || mine["created_at"] == nil || mine["recovery_codes_left"] != 0.0 {
			t.Fatalf("the account page's JSON: %v", mine)
		}

		// An authenticator app, with the code an app computes from the URI.
		accountPage := first.get("/.auth/account")
		csrf := accountPage.field("csrf")
		if accountPage.status != http.StatusOK || csrf == "" {
			t.Fatalf("account page: %d\n%s", accountPage.status, accountPage.body)
		}
		enrol := first.post("/.auth/account/totp", url.Values{"csrf": {csrf}})
		m := otpauthURI.FindStringSubmatch(enrol.body)
		if enrol.status != http.StatusOK || m == nil || !strings.Contains(enrol.body, "<svg") {
			t.Fatalf("enrolment page: %d\n%s", enrol.status, enrol.body)
		}
		key, err := otp.NewKeyFromURL(html.UnescapeString(m[1]))
		if err != nil || key.Secret() == "" || !strings.HasSuffix(key.AccountName(), "nora") {
			t.Fatalf("otpauth URI %q: %v", m[1], err)
		}
		appCode, _ := totp.GenerateCode(key.Secret(), time.Now())
		if p := first.post("/.auth/account/totp/confirm", url.Values{"csrf": {csrf}, "code": {appCode}}); p.status != http.StatusSeeOther {
			t.Fatalf("confirming the app: %d\n%s", p.status, p.body)
		}
		if a, _ := accountJSONOf(t, first); a["totp"] != true {
			t.Fatalf("TOTP not on: %v", a)
		}

		// Recovery codes: ten, each signing in once in place of the code.
		made := first.post("/.auth/account/recovery-codes", url.Values{"csrf": {csrf}})
		var codes []string
		for _, m := range recoveryCode.FindAllStringSubmatch(made.body, -1) {
			codes = append(codes, m[1])
		}
		if made.status != http.StatusOK || len(codes) != 10 {
			t.Fatalf("recovery codes: %d, %d codes", made.status, len(codes))
		}
		recover := func(password, code string) (*browser, page) {
			b := newBrowser(t, g.base)
			step := b.signInForm("/app", "nora", password)
			if step.field("pending") == "" {
				t.Fatalf("no code step for nora: %d\n%s", step.status, step.body)
			}
			return b, b.codeStep(step, code)
		}
		second, p := recover("nora's first password", codes[0])
		if p.status != http.StatusSeeOther || second.upstreamSees("/app")["X-Auth-Method"] != "password+recovery" {
			t.Fatalf("a recovery code: %d\n%s", p.status, p.body)
		}
		if _, p := recover("nora's first password", codes[0]); p.status != http.StatusUnauthorized {
			t.Fatalf("the same recovery code again: %d", p.status)
		}
		third, p := recover("nora's first password", codes[1])
		if p.status != http.StatusSeeOther {
			t.Fatalf("another recovery code: %d", p.status)
		}
		if a, _ := accountJSONOf(t, first); a["recovery_codes_left"] != 8.0 {
			t.Fatalf("recovery_codes_left after two: %v", a["recovery_codes_left"])
		}

		// Refused forms change nothing: no CSRF token, another origin.
		for name, p := range map[string]page{
			"no token":       first.post("/.auth/account/recovery-codes", url.Values{}),
			"another origin": first.post("/.auth/account/recovery-codes", url.Values{"csrf": {csrf}}, "Origin", "https://evil.example"),
			"cross-site":     first.post("/.auth/account/totp/remove", url.Values{"csrf": {csrf}}, "Sec-Fetch-Site", "cross-site"),
			"another scheme": first.post("/.auth/account/password", url.Values{"csrf": {csrf}, "current": {"nora's first password"}, "new": {"evil's password"}},
				"Origin", strings.Replace(g.base, "http://", "https://", 1)),
		} {
			if p.status != http.StatusForbidden || recoveryCode.MatchString(p.body) {
				t.Errorf("%s: %d", name, p.status)
			}
		}
		if a, _ := accountJSONOf(t, first); a["recovery_codes_left"] != 8.0 || a["totp"] != true {
			t.Fatalf("a refused form changed the account: %v", a)
		}

		// A password change ends the other sessions, not this one.
		if p := first.post("/.auth/account/password", url.Values{"csrf": {csrf}, "current": {"nora's first password"}, "new": {"nora's second password"}}); p.status != http.StatusSeeOther {
			t.Fatalf("password change: %d\n%s", p.status, p.body)
		}
		if !reaches(first) || reaches(second) || reaches(third) {
			t.Fatalf("after the password change: this %v, others %v %v", reaches(first), reaches(second), reaches(third))
		}
		if p := newBrowser(t, g.base).signInForm("/app", "nora", "nora's first password"); p.status != http.StatusUnauthorized || p.field("pending") != "" {
			t.Fatalf("the old password: %d", p.status)
		}

		// Disabling ends the sessions and API tokens; so does deleting.
		token := tokenOf(t, g, first)
		if !bearerReaches(t, g, token) {
			t.Fatal("nora's API token does not work")
		}
		if code, body := g.adminDo("PATCH", "/session-auth/accounts/nora", `{"disabled":true}`); code != http.StatusOK {
			t.Fatalf("disable: %d %s", code, body)
		}
		if reaches(first) || bearerReaches(t, g, token) {
			t.Fatal("a disabled account's session or token still works")
		}
		if p := newBrowser(t, g.base).signInForm("/app", "nora", "nora's second password"); p.status != http.StatusUnauthorized {
			t.Fatalf("a disabled account signs in: %d", p.status)
		}
		g.adminDo("PATCH", "/session-auth/accounts/nora", `{"disabled":false}`)
		fourth, p := recover("nora's second password", codes[3])
		if p.status != http.StatusSeeOther {
			t.Fatalf("enabled again: %d", p.status)
		}
		token = tokenOf(t, g, fourth)
		code, body = g.adminDo("DELETE", "/session-auth/accounts/nora", "")
		if code != http.StatusOK || !strings.Contains(body, `"revoked":["`) {
			t.Fatalf("delete: %d %s", code, body)
		}
		if reaches(fourth) || bearerReaches(t, g, token) {
			t.Fatal("a deleted account's session or token still works")
		}
		if code, _ := g.adminDo("GET", "/session-auth/accounts/nora", ""); code != http.StatusNotFound {
			t.Fatalf("the deleted account: %d", code)
		}
		var evs []struct{ Type string }
		_, body = g.adminDo("GET", "/session-auth/users/nora/events", "")
		_ = json.Unmarshal([]byte(body), &evs)
		var types []string
		for _, e := range evs {
			types = append(types, e.Type)
		}
		for _, want := range []string{"account_created", "account_activated", "totp_added", "recovery_codes_made", "recovery_code_used", "password_changed", "account_deleted"} {
			if !slices.Contains(types, want) {
				t.Errorf("no %s event among %v", want, types)
			}
		}
		t.Logf("events: %v", types)
	})
}
