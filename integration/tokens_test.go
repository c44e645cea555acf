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
