package integration

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sessionauth/caddy-sessionauth/internal/redisserver"
)

// postBody sends a POST with a body as the browser-like client c (its
// cookie, if any) and the header pairs.
func (c *client) postBody(target, contentType, body string, header ...string) *response {
	c.t.Helper()
	req, err := http.NewRequest("POST", c.g.base+target, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	if c.cookie != "" {
		req.Header.Set("Cookie", c.name+"="+c.cookie)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	res, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("POST %s: %v", target, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return &response{Response: res, body: string(b)}
}

type tokenJSON struct {
	ID, Name, Token string
	ExpiresAt       string `json:"expires_at"`
}

// createToken makes an API token through POST /.auth/tokens with JSON,
// as c (signed in with a cookie).
func createToken(t *testing.T, c *client, body string) tokenJSON {
	t.Helper()
	csrf := c.do("GET", "/.auth/me").Header.Get("X-CSRF-Token")
	res := c.postBody("/.auth/tokens", "application/json", body, "X-CSRF-Token", csrf, "Accept", "application/json")
	var tok tokenJSON
	if res.StatusCode != 201 || json.Unmarshal([]byte(res.body), &tok) != nil || !strings.HasPrefix(tok.Token, "sat_") {
		t.Fatalf("creating a token: %d %s", res.StatusCode, res.body)
	}
	return tok
}

// API tokens through the real Caddy on every store: created with the
// cookie session's CSRF token, accepted as a bearer with X-Auth-Method:
// token, no cookie set and the header kept from the upstream; outside
// max_sessions; listed by name and never by value; exempt from the
// cross-site rule; revoked, then 401.
func TestAPITokens(t *testing.T) {
	stores(t, func(t *testing.T, store string, _ *redisserver.Server) {
		up := newUpstream(t)
		g := loadCaddy(t, site(store+"\nmax_sessions 1\napi_tokens max_lifetime 30d"), up)
		user := "tok-" + randomID()
		c := newClient(t, g)
		c.signIn(user, "roles", "deploy")

		if r := c.postBody("/.auth/tokens", "application/json", `{"name":"ci","lifetime":"31d"}`,
			"X-CSRF-Token", c.do("GET", "/.auth/me").Header.Get("X-CSRF-Token")); r.StatusCode != 400 {
			t.Fatalf("a lifetime over max_lifetime: %d %s", r.StatusCode, r.body)
		}
		if r := c.postBody("/.auth/tokens", "application/json", `{"name":"ci"}`); r.StatusCode != 403 {
			t.Fatalf("without the CSRF token: %d", r.StatusCode)
		}
		tok := createToken(t, c, `{"name":"ci deploy","lifetime":"720h"}`)
		exp, err := time.Parse(time.RFC3339, tok.ExpiresAt)
		if err != nil || time.Until(exp) < 719*time.Hour || time.Until(exp) > 721*time.Hour || tok.Name != "ci deploy" {
			t.Fatalf("token answer: %+v", tok)
		}

		api := newClient(t, g)
		bearer := []string{"Authorization", "Bearer " + tok.Token}
		res := api.do("GET", "/api/deploy", bearer...)
		if res.StatusCode != 200 || res.headers["X-Auth-User"] != user || res.headers["X-Auth-Method"] != "token" ||
			res.headers["X-Auth-Roles"] != "deploy" || res.headers["X-Auth-Session"] != tok.ID {
			t.Fatalf("bearer: %d %v", res.StatusCode, res.headers)
		}
		if len(res.Header.Values("Set-Cookie")) != 0 {
			t.Errorf("a token request set cookies: %v", res.Header.Values("Set-Cookie"))
		}
		if got := up.lastRequest().Header.Get("Authorization"); got != "" {
			t.Errorf("the token reached the upstream: %q", got)
		}
		// The app's own Authorization passes untouched; without a session it is no identity.
		if r := api.do("GET", "/api/x", "Authorization", "Bearer app-token"); r.StatusCode != 401 {
			t.Errorf("a foreign bearer: %d", r.StatusCode)
		}
		// Not counted in max_sessions 1: a second sign-in ends the first browser session only.
		c2 := newClient(t, g)
		c2.signIn(user)
		if r := c.do("GET", "/x"); r.StatusCode != 401 {
			t.Fatalf("first browser session after the limit: %d", r.StatusCode)
		}
		if r := api.do("GET", "/x", bearer...); r.StatusCode != 200 {
			t.Fatalf("the token after the limit: %d", r.StatusCode)
		}
		// Listed with kind and name, never the value.
		list := c2.do("GET", "/.auth/sessions", "Accept", "application/json")
		var ss []map[string]any
		_ = json.Unmarshal([]byte(list.body), &ss)
		found := false
		for _, s := range ss {
			if s["id"] == tok.ID {
				found = s["kind"] == "token" && s["name"] == "ci deploy" && s["auth_method"] == "token" && s["active"] == true
			}
		}
		secret := strings.SplitN(strings.TrimPrefix(tok.Token, "sat_"), ".", 2)[1]
		if !found || strings.Contains(list.body, secret) {
			t.Fatalf("token in the list: %s", list.body)
		}
		code, admin := g.adminDo("GET", "/session-auth/users/"+url.PathEscape(user)+"/sessions", "")
		if code != 200 || !strings.Contains(admin, `"kind":"token"`) || strings.Contains(admin, secret) {
			t.Fatalf("admin list: %d %s", code, admin)
		}
		if _, evs := g.adminDo("GET", "/session-auth/users/"+url.PathEscape(user)+"/events", ""); !strings.Contains(evs, `"type":"token_created"`) {
			t.Errorf("no token_created event: %s", evs)
		}
		// The page lists it under "Access tokens", by name.
		page := c2.do("GET", "/.auth/sessions", "Accept", "text/html").body
		if !strings.Contains(page, "Access tokens") || !strings.Contains(page, "ci deploy") ||
			!strings.Contains(page, "/.auth/tokens/"+tok.ID+"/revoke") || strings.Contains(page, secret) {
			t.Fatalf("page:\n%s", page)
		}
		// Exempt from the cross-site rule: the token revokes itself with a foreign Origin.
		res = api.do("POST", "/.auth/tokens/"+tok.ID+"/revoke", append(bearer, "Origin", "https://evil.example", "Accept", "application/json")...)
		if res.StatusCode != 204 {
			t.Fatalf("revoking with the token: %d %s", res.StatusCode, res.body)
		}
		if r := api.do("GET", "/x", bearer...); r.StatusCode != 401 || len(r.Header.Values("Set-Cookie")) != 0 {
			t.Fatalf("a revoked token: %d %v", r.StatusCode, r.Header.Values("Set-Cookie"))
		}
		// A cookie session's credential is no token, and a token is no cookie.
		if r := api.do("GET", "/x", "Authorization", "Bearer sat_"+c2.cookie); r.StatusCode != 401 {
			t.Errorf("a cookie value as a bearer: %d", r.StatusCode)
		}
		tok2 := createToken(t, c2, `{"name":"second"}`)
		cookieTok := newClient(t, g)
		cookieTok.cookie = strings.TrimPrefix(tok2.Token, "sat_")
		if r := cookieTok.do("GET", "/x"); r.StatusCode != 401 {
			t.Errorf("a token as a cookie: %d", r.StatusCode)
		}
		// A token cannot make tokens.
		if r := api.postBody("/.auth/tokens", "application/json", `{"name":"x"}`, "Authorization", "Bearer "+tok2.Token); r.StatusCode != 403 {
			t.Errorf("a token creating a token: %d", r.StatusCode)
		}
	})
}

// The admin API mints a token for a user; it is listed and revoked with
// the user's sessions.
func TestAdminMintsTokens(t *testing.T) {
	g := loadCaddy(t, site("store memory\napi_tokens"), newUpstream(t))
	user := "adm-" + randomID()
	code, body := g.adminDo("POST", "/session-auth/users/"+user+"/tokens", `{"name":"backup job","lifetime":"48h","roles":"backup"}`)
	var tok tokenJSON
	if code != 201 || json.Unmarshal([]byte(body), &tok) != nil || !strings.HasPrefix(tok.Token, "sat_") {
		t.Fatalf("mint: %d %s", code, body)
	}
	if code, body := g.adminDo("POST", "/session-auth/users/"+user+"/tokens", `{"name":"x","lifetime":"91d"}`); code != 400 {
		t.Fatalf("over the default 90 days: %d %s", code, body)
	}
	api := newClient(t, g)
	if r := api.do("GET", "/x", "Authorization", "Bearer "+tok.Token); r.StatusCode != 200 || r.headers["X-Auth-Roles"] != "backup" {
		t.Fatalf("admin-minted token: %d %v", r.StatusCode, r.headers)
	}
	if code, _ := g.adminDo("DELETE", "/session-auth/users/"+user+"/sessions", ""); code != 200 {
		t.Fatalf("revoke all: %d", code)
	}
	if r := api.do("GET", "/x", "Authorization", "Bearer "+tok.Token); r.StatusCode != 401 {
		t.Fatalf("after revoke all: %d", r.StatusCode)
	}
}

// A bearer that matches nothing counts towards guess_rate like an
// unknown cookie.
func TestBearerGuessesCount(t *testing.T) {
	g := loadCaddy(t, site("store memory\napi_tokens\nguess_rate 3 1m"), newUpstream(t))
	c := newClient(t, g)
	fake := "Bearer sat_" + strings.Repeat("0", 32) + "." + strings.Repeat("A", 43)
	codes := []int{}
	for range 5 {
		codes = append(codes, c.do("GET", "/x", "Authorization", fake, "X-Forwarded-For", "198.51.100.200").StatusCode)
	}
	if codes[0] != 401 || codes[4] != 429 {
		t.Fatalf("answers %v, want 401 then 429", codes)
	}
}

// caddy sessions list shows a user's tokens by name, never by value.
func TestCLIListsTokens(t *testing.T) {
	g := loadCaddy(t, site("store memory\napi_tokens"), newUpstream(t))
	user := "clitok-" + randomID()
	_, body := g.adminDo("POST", "/session-auth/users/"+user+"/tokens", `{"name":"nightly"}`)
	var tok tokenJSON
	if json.Unmarshal([]byte(body), &tok) != nil || tok.Token == "" {
		t.Fatalf("mint: %s", body)
	}
	out, err := runCLI(t, "list", "--user", user, "--address", strings.TrimPrefix(g.admin, "http://"))
	secret := strings.SplitN(tok.Token, ".", 2)[1]
	if err != nil || !strings.Contains(out, `API token "nightly"`) || !strings.Contains(out, tok.ID[:18]) || strings.Contains(out, secret) {
		t.Fatalf("list: %v\n%s", err, out)
	}
}

// tokenSite is a site with API tokens (the given api_tokens line), a
// webhook for token_created, and a no_risk rule on /calm/*.
func tokenSite(store, apiTokens, hook string) string {
	return `{
	admin 127.0.0.1:{ADMIN}
	persist_config off
	auto_https off
	servers {
		trusted_proxies static 127.0.0.0/8
	}
}
http://127.0.0.1:{PORT} {
	session_auth {
		` + store + `
		login_rate 100000 1m
		max_sessions 0
		` + apiTokens + `
		notify ` + hook + ` {
			secret hook-secret
			events token_created
		}
	}
	session_require /calm/* no_risk
	reverse_proxy {UPSTREAM}
}
`
}

// SPEC 12 through the real Caddy on every store: a token keeps its
// maker's risk flags (a no_risk route refuses a token made by a browser
// seen from a new address) and is an "API token" device; revoking its
// maker from the sessions page ends it, "Sign out all other sessions"
// keeps the current session's tokens, signing out keeps them; past
// max_per_user a token is refused with 409 and a message; token_created
// is notified with a "Not you?" link that ends the token and its maker.
func TestTokensFollowTheirMaker(t *testing.T) {
	stores(t, func(t *testing.T, store string, _ *redisserver.Server) {
		rc := newReceiver(t, 0, "")
		g := loadCaddy(t, tokenSite(store, "api_tokens {\n max_per_user 3\n }", "http://"+rc.addr+"/hook"), newUpstream(t))
		user := "fam-" + randomID()
		ua := []string{"User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"}

		intruder := newGeoClient(t, g, ua[1])
		intruder.signInFrom("198.51.100.20", user)
		intruder.from("203.0.113.50", "GET", "/") // seen from a new address: ip-changed
		csrf := intruder.from("203.0.113.50", "GET", "/.auth/me").Header.Get("X-CSRF-Token")
		res := intruder.postBody("/.auth/tokens", "application/json", `{"name":"exfil"}`, "X-CSRF-Token", csrf,
			"Accept", "application/json", "X-Forwarded-For", "203.0.113.50", ua[0], ua[1])
		var flagged tokenJSON
		if res.StatusCode != 201 || json.Unmarshal([]byte(res.body), &flagged) != nil {
			t.Fatalf("token from the moved browser: %d %s", res.StatusCode, res.body)
		}
		api := newClient(t, g)
		bearer := func(tok tokenJSON) []string { return []string{"Authorization", "Bearer " + tok.Token} }
		if r := api.do("GET", "/calm/x", append(bearer(flagged), "Accept", "application/json")...); r.StatusCode != 403 {
			t.Fatalf("no_risk let the flagged session's token through: %d %v", r.StatusCode, r.headers)
		}
		if r := api.do("GET", "/x", bearer(flagged)...); r.StatusCode != 200 || r.headers["X-Auth-Risk"] != "ip-changed" ||
			r.headers["X-Auth-Device"] != "API token" || r.headers["X-Auth-Browser"] != "" {
			t.Fatalf("the token's identity: %d %v", r.StatusCode, r.headers)
		}

		owner := newClient(t, g)
		owner.signIn(user)
		mine := createToken(t, owner, `{"name":"laptop"}`)
		page := owner.do("GET", "/.auth/sessions", "Accept", "text/html").body
		if !strings.Contains(page, "Signing it out also revokes the access token it made: “exfil”") {
			t.Fatalf("the page does not say the intruder's Sign out ends its token:\n%s", page)
		}
		intruderID := strings.SplitN(intruder.cookie, ".", 2)[0]
		csrf = owner.do("GET", "/.auth/me").Header.Get("X-CSRF-Token")
		if r := owner.postBody("/.auth/sessions/"+intruderID+"/revoke", "application/x-www-form-urlencoded", "", "X-CSRF-Token", csrf); r.StatusCode != 204 {
			t.Fatalf("revoking the intruder: %d %s", r.StatusCode, r.body)
		}
		if r := api.do("GET", "/x", bearer(flagged)...); r.StatusCode != 401 {
			t.Fatalf("the revoked session's token: %d", r.StatusCode)
		}

		other := newClient(t, g)
		other.signIn(user)
		theirs := createToken(t, other, `{"name":"other"}`)
		if r := owner.postBody("/.auth/sessions/revoke-others", "application/x-www-form-urlencoded", "", "X-CSRF-Token", csrf); r.StatusCode != 204 {
			t.Fatalf("revoke-others: %d", r.StatusCode)
		}
		if r := api.do("GET", "/x", bearer(theirs)...); r.StatusCode != 401 {
			t.Fatalf("another session's token after revoke-others: %d", r.StatusCode)
		}
		if r := api.do("GET", "/x", bearer(mine)...); r.StatusCode != 200 {
			t.Fatalf("the current session's token after revoke-others: %d", r.StatusCode)
		}

		// max_per_user 3: laptop plus two more, then 409.
		createToken(t, owner, `{"name":"two"}`)
		last := createToken(t, owner, `{"name":"three"}`)
		r := owner.postBody("/.auth/tokens", "application/json", `{"name":"four"}`, "X-CSRF-Token", csrf, "Accept", "application/json")
		if r.StatusCode != 409 || !strings.Contains(r.body, `"error":"too_many_tokens"`) || !strings.Contains(r.body, "You have 3 access tokens") {
			t.Fatalf("a fourth token: %d %s", r.StatusCode, r.body)
		}

		// token_created, with a link that ends the token and its maker.
		waitUntil(t, 20*time.Second, func() bool { return rc.find("token_created", last.ID) != nil })
		n := rc.find("token_created", last.ID)
		if n["user_id"] != user || n["revoke_url"] == "" || rc.badSig != 0 {
			t.Fatalf("token_created notice: %v", n)
		}
		link := strings.Replace(n["revoke_url"], g.base, "", 1)
		if res := newClient(t, g).do("POST", link); res.StatusCode != 200 {
			t.Fatalf("the token's Not you? link: %d %s", res.StatusCode, res.body)
		}
		if r := api.do("GET", "/x", bearer(last)...); r.StatusCode != 401 {
			t.Fatalf("the token after its link: %d", r.StatusCode)
		}
		if r := owner.do("GET", "/x"); r.StatusCode != 401 {
			t.Fatalf("the token's maker after the token's link: %d", r.StatusCode)
		}
		if r := api.do("GET", "/x", bearer(mine)...); r.StatusCode != 401 {
			t.Fatalf("the maker's other token after the link: %d", r.StatusCode)
		}
	})
}

// The admin API's token endpoint takes roles as an array or a
// comma-separated string, as the mint does (SPEC 6).
func TestAdminTokenRoles(t *testing.T) {
	g := loadCaddy(t, site("store memory\napi_tokens"), newUpstream(t))
	user := "roles-" + randomID()
	api := newClient(t, g)
	for _, body := range []string{`{"name":"a","roles":["backup","read"]}`, `{"name":"b","roles":"backup,read"}`} {
		code, out := g.adminDo("POST", "/session-auth/users/"+user+"/tokens", body)
		var tok tokenJSON
		if code != 201 || json.Unmarshal([]byte(out), &tok) != nil {
			t.Fatalf("%s: %d %s", body, code, out)
		}
		if r := api.do("GET", "/x", "Authorization", "Bearer "+tok.Token); r.StatusCode != 200 || r.headers["X-Auth-Roles"] != "backup,read" {
			t.Fatalf("%s: %d %v", body, r.StatusCode, r.headers)
		}
	}
	if code, out := g.adminDo("POST", "/session-auth/users/"+user+"/tokens", `{"name":"c","roles":["a,b"]}`); code != 400 || !strings.Contains(out, "comma") {
		t.Fatalf("a role with a comma: %d %s", code, out)
	}
}
