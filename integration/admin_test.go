package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sessionauth/caddy-sessionauth/internal/redisserver"
)

func TestAdminAPI(t *testing.T) {
	stores(t, func(t *testing.T, store string, _ *redisserver.Server) {
		up := newUpstream(t)
		g := loadCaddy(t, site(store+"\nmax_sessions 0"), up)
		user := "user/" + randomID() // a slash survives as %2F

		// Mint for an app that keeps its own sign-in.
		code, body := g.adminDo("POST", "/session-auth/sessions",
			`{"user_id":"`+user+`","email":"u@example.com","roles":"ops","ip_address":"198.51.100.4","user_agent":"curl/8"}`)
		var minted struct {
			ID        string `json:"id"`
			Token     string `json:"token"`
			ExpiresAt string `json:"expires_at"`
			SetCookie string `json:"set_cookie"`
		}
		if code != 201 || json.Unmarshal([]byte(body), &minted) != nil || minted.Token == "" || !strings.HasPrefix(minted.Token, minted.ID+".") || minted.ExpiresAt == "" {
			t.Fatalf("mint: %d %s", code, body)
		}
		// The site is plain HTTP: its cookie is `session`, not Secure.
		if !strings.HasPrefix(minted.SetCookie, "session="+minted.Token+";") || !strings.Contains(minted.SetCookie, "HttpOnly") || strings.Contains(minted.SetCookie, "Secure") {
			t.Errorf("set_cookie %q", minted.SetCookie)
		}
		c := newClient(t, g)
		c.cookie = minted.Token
		if res := c.do("GET", "/"); res.headers["X-Auth-User"] != user || res.headers["X-Auth-Roles"] != "ops" || res.headers["X-Auth-Method"] != "admin" {
			t.Fatalf("minted token: %d %v", res.StatusCode, res.headers)
		}
		// Events of different sessions in the same millisecond have no
		// order the trail can tell (it keeps milliseconds, and a sign-in
		// lists after what happened with it): the next sign-in comes a
		// millisecond later, as a person's would.
		time.Sleep(2 * time.Millisecond)
		b := newClient(t, g)
		b.signIn(user)
		d := newClient(t, g)
		d.signIn(user)

		esc := url.PathEscape(user)
		code, body = g.adminDo("GET", "/session-auth/users/"+esc+"/sessions", "")
		var list []map[string]any
		if code != 200 || json.Unmarshal([]byte(body), &list) != nil || len(list) != 3 {
			t.Fatalf("list: %d %s", code, body)
		}
		if strings.Contains(body, minted.Token[33:]) || strings.Contains(body, "token") {
			t.Error("list shows a token")
		}
		if _, ok := list[0]["current"]; ok {
			t.Error("admin list has a current field")
		}

		code, body = g.adminDo("GET", "/session-auth/sessions/"+minted.ID, "")
		if code != 200 || !strings.Contains(body, `"ip_address":"127.0.0.1"`) || !strings.Contains(body, `"login_ip_address":"198.51.100.4"`) {
			t.Errorf("show: %d %s", code, body)
		}
		// Revoke one.
		if code, body = g.adminDo("DELETE", "/session-auth/sessions/"+minted.ID, ""); code != 200 || !strings.Contains(body, `"end_reason":"revoked"`) {
			t.Errorf("revoke one: %d %s", code, body)
		}
		if c.do("GET", "/").StatusCode != 401 {
			t.Error("revoked session still valid")
		}
		if code, _ = g.adminDo("DELETE", "/session-auth/sessions/"+minted.ID, ""); code != 404 {
			t.Errorf("revoke twice: %d", code)
		}
		// Revoke all but one.
		bid := b.do("GET", "/").headers["X-Auth-Session"]
		if code, body = g.adminDo("DELETE", "/session-auth/users/"+esc+"/sessions?except="+bid, ""); code != 200 {
			t.Errorf("revoke except: %d %s", code, body)
		}
		if b.do("GET", "/").StatusCode != 200 || d.do("GET", "/").StatusCode != 401 {
			t.Error("revoke except ended the wrong sessions")
		}
		if code, _ = g.adminDo("DELETE", "/session-auth/users/"+esc+"/sessions", ""); code != 200 || b.do("GET", "/").StatusCode != 401 {
			t.Error("revoke all left a session")
		}
		// The audit trail, newest first.
		code, body = g.adminDo("GET", "/session-auth/users/"+esc+"/events?limit=50", "")
		var evs []struct{ Type, Actor, Reason, SessionID string }
		if code != 200 || json.Unmarshal([]byte(body), &evs) != nil {
			t.Fatalf("events: %d %s", code, body)
		}
		var kinds []string
		for _, e := range evs {
			kinds = append(kinds, e.Type+"/"+e.Actor)
		}
		// The minted session was first used from another IP (ip_change);
		// the third sign-in came from a browser the user had not used.
		want := "revoke/admin revoke/admin revoke/admin risk/ login/ login/ ip_change/ login/"
		if strings.Join(kinds, " ") != want {
			t.Errorf("events %v, want %s", kinds, want)
		}
		if code, body = g.adminDo("GET", "/session-auth/users/"+esc+"/events?limit=2", ""); code != 200 || strings.Count(body, `"type"`) != 2 {
			t.Errorf("events limit: %d %s", code, body)
		}

		// Active sessions last seen from an address.
		v := newClient(t, g)
		v.signIn("byip-"+randomID(), "x", "y")
		v.do("GET", "/", "X-Forwarded-For", "198.51.100.77")
		if code, body := g.adminDo("GET", "/session-auth/sessions?ip=198.51.100.77", ""); code != 200 || strings.Count(body, `"id"`) != 1 {
			t.Errorf("?ip=: %d %s", code, body)
		}
		if code, _ := g.adminDo("GET", "/session-auth/sessions?ip=nonsense", ""); code != 400 {
			t.Errorf("?ip=nonsense: %d", code)
		}

		// The emergency stop: every session of every user.
		x, y := newClient(t, g), newClient(t, g)
		x.signIn("everyone-" + randomID())
		y.signIn("everyone-" + randomID())
		if code, body := g.adminDo("DELETE", "/session-auth/sessions", ""); code != 400 || x.do("GET", "/").StatusCode != 200 {
			t.Fatalf("revoke everyone without all=true: %d %s", code, body)
		}
		if code, body := g.adminDo("DELETE", "/session-auth/sessions?all=true", ""); code != 200 || !strings.Contains(body, `"revoked"`) {
			t.Fatalf("revoke everyone: %d %s", code, body)
		}
		if x.do("GET", "/").StatusCode != 401 || y.do("GET", "/").StatusCode != 401 {
			t.Fatal("a session survived revoke everyone")
		}

		// Bad input: clear 4xx answers.
		for _, tc := range []struct {
			method, path, body string
			code               int
		}{
			{"POST", "/session-auth/sessions", `{"user_id":`, 400},
			{"POST", "/session-auth/sessions", `{"user_id":"x","admin":true}`, 400},
			{"POST", "/session-auth/sessions", `{"user_id":""}`, 400},
			{"POST", "/session-auth/sessions", `{"user_id":"a\nb"}`, 400},
			{"GET", "/session-auth/sessions/0123456789abcdef0123456789abcdef", "", 404},
			{"GET", "/session-auth/sessions/not-an-id", "", 404},
			{"DELETE", "/session-auth/sessions/%2E%2E", "", 404},
			{"DELETE", "/session-auth/users/%2E%2E/sessions?except=x", "", 200},
			{"GET", "/session-auth/users/x/events?limit=0", "", 400},
			{"GET", "/session-auth/users/x/events?limit=many", "", 400},
			{"PUT", "/session-auth/users/x/sessions", "", 405},
			{"GET", "/session-auth/whatever", "", 404},
		} {
			if code, body := g.adminDo(tc.method, tc.path, tc.body); code != tc.code || (code >= 400 && !strings.Contains(body, `"error"`)) {
				t.Errorf("%s %s %s: %d %s, want %d", tc.method, tc.path, tc.body, code, body, tc.code)
			}
		}
	})
}

// The minted session's set_cookie is what each site would set itself, so
// a client that sends it as given is signed in; roles come as an array or
// a comma-separated string.
func TestAdminMintSetCookiePerSite(t *testing.T) {
	up := newUpstream(t)
	port, port2, admin := redisserver.FreePort(t), redisserver.FreePort(t), redisserver.FreePort(t)
	text := fmt.Sprintf(`{
	admin 127.0.0.1:%d
	persist_config off
	auto_https off
}
http://127.0.0.1:%d {
	session_auth {
		store memory
	}
	reverse_proxy %s
}
http://localhost:%d {
	session_auth {
		store memory
		cookie app_sid {
			same_site strict
		}
	}
	reverse_proxy %s
}
`, admin, port, up.addr, port2, up.addr)
	g := &gateway{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", port), admin: fmt.Sprintf("http://127.0.0.1:%d", admin), port: port}
	g.load(text)
	t.Cleanup(stopCaddy)
	g2 := &gateway{t: t, base: fmt.Sprintf("http://localhost:%d", port2), admin: g.admin, port: port2}

	code, body := g.adminDo("POST", "/session-auth/sessions", `{"user_id":"mint-sites","roles":["ops","billing"]}`)
	var minted struct {
		Token     string `json:"token"`
		SetCookie string `json:"set_cookie"`
		Sites     []struct {
			Site      string `json:"site"`
			SetCookie string `json:"set_cookie"`
		} `json:"sites"`
	}
	if code != 201 || json.Unmarshal([]byte(body), &minted) != nil || len(minted.Sites) != 2 {
		t.Fatalf("mint: %d %s", code, body)
	}
	want := map[string]string{
		fmt.Sprintf("http://127.0.0.1:%d", port):  "session=" + minted.Token + "; Path=/; Max-Age=2592000; HttpOnly; SameSite=Lax",
		fmt.Sprintf("http://localhost:%d", port2): "app_sid=" + minted.Token + "; Path=/; Max-Age=2592000; HttpOnly; SameSite=Strict",
	}
	for _, s := range minted.Sites {
		if want[s.Site] != s.SetCookie {
			t.Errorf("site %s: set_cookie %q, want %q", s.Site, s.SetCookie, want[s.Site])
		}
	}
	if minted.SetCookie != minted.Sites[0].SetCookie {
		t.Errorf("set_cookie %q is not the first site's %q", minted.SetCookie, minted.Sites[0].SetCookie)
	}
	// Sent as given, each site's cookie signs the client in there.
	for _, tc := range []struct {
		g         *gateway
		setCookie string
	}{{g, want[g.base]}, {g2, want[g2.base]}} {
		nameValue, _, _ := strings.Cut(tc.setCookie, ";")
		res, err := http.DefaultClient.Do(func() *http.Request {
			req, _ := http.NewRequest("GET", tc.g.base+"/", nil)
			req.Header.Set("Cookie", nameValue)
			return req
		}())
		if err != nil {
			t.Fatal(err)
		}
		seen, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || !strings.Contains(string(seen), `"X-Auth-Roles":"ops,billing"`) {
			t.Fatalf("%s with %q: %d %s", tc.g.base, nameValue, res.StatusCode, seen)
		}
	}

	if code, body := g.adminDo("POST", "/session-auth/sessions", `{"user_id":"mint-sites","roles":"ops,billing"}`); code != 201 {
		t.Fatalf("roles as a string: %d %s", code, body)
	}
	for _, bad := range []string{`{"user_id":"u","roles":["a,b"]}`, `{"user_id":"u","roles":[1]}`, `{"user_id":"u","roles":{"a":1}}`} {
		if code, body := g.adminDo("POST", "/session-auth/sessions", bad); code != 400 || !strings.Contains(body, "roles") && !strings.Contains(body, "role ") {
			t.Errorf("%s: %d %s", bad, code, body)
		}
	}
}

// Email user ids are one person in any case (SPEC 11 "One user id, one
// person"), through the admin API too: a mint for Carol@Example.COM is
// carol@example.com's session, and the user's routes find it by either
// spelling.
func TestAdminEmailUserIDsAreLowerCase(t *testing.T) {
	up := newUpstream(t)
	g := loadCaddy(t, site("store memory"), up)
	code, body := g.adminDo("POST", "/session-auth/sessions", `{"user_id":"Carol@Example.COM"}`)
	var minted struct {
		Token string `json:"token"`
	}
	if code != 201 || json.Unmarshal([]byte(body), &minted) != nil {
		t.Fatalf("mint: %d %s", code, body)
	}
	c := newClient(t, g)
	c.cookie = minted.Token
	if res := c.do("GET", "/"); res.headers["X-Auth-User"] != "carol@example.com" {
		t.Fatalf("X-Auth-User %q", res.headers["X-Auth-User"])
	}
	for _, spelling := range []string{"carol@example.com", "CAROL@example.com"} {
		var list []map[string]any
		code, body := g.adminDo("GET", "/session-auth/users/"+url.PathEscape(spelling)+"/sessions", "")
		if code != 200 || json.Unmarshal([]byte(body), &list) != nil || len(list) != 1 {
			t.Fatalf("list as %s: %d %s", spelling, code, body)
		}
	}
	if code, _ := g.adminDo("DELETE", "/session-auth/users/"+url.PathEscape("Carol@EXAMPLE.com")+"/sessions", ""); code != 200 {
		t.Fatalf("revoke: %d", code)
	}
	if res := c.do("GET", "/"); res.StatusCode == 200 {
		t.Fatal("the session lives after its user's sessions were revoked by another spelling")
	}
}
