package integration

import (
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/sessionauth/caddy-sessionauth/internal/redisserver"
)

var csrfField = regexp.MustCompile(`name="csrf" value="([0-9a-f]{32})"`)

func TestSelfServiceSessions(t *testing.T) {
	stores(t, func(t *testing.T, store string, _ *redisserver.Server) {
		g := loadCaddy(t, site(store+"\nmax_sessions 0"), newUpstream(t))
		user := "self-" + randomID()
		phone := newGeoClient(t, g, iPhoneChrome)
		phone.signInFrom("198.51.100.9", user)
		pc := newGeoClient(t, g, windowsEdge)
		pc.signInFrom("198.51.100.10", user)
		tablet := newClient(t, g)
		tablet.signIn(user, "name", `<script>alert("x")</script>`)
		stranger := newClient(t, g)
		stranger.signIn("stranger-" + randomID())
		strangerID := strings.SplitN(stranger.cookie, ".", 2)[0]
		pcID := strings.SplitN(pc.cookie, ".", 2)[0]

		// JSON: the caller's sessions only, newest activity first, "current" set.
		res := phone.from("198.51.100.9", "GET", "/.auth/sessions", "Accept", "application/json")
		var list []map[string]any
		if res.StatusCode != 200 || json.Unmarshal([]byte(res.body), &list) != nil || len(list) != 3 {
			t.Fatalf("JSON list: %d %s", res.StatusCode, res.body)
		}
		current := 0
		for _, s := range list {
			if s["user_id"] != user {
				t.Fatalf("another user's session listed: %v", s)
			}
			if s["current"] == true {
				current++
				if s["device_name"] != "iPhone" {
					t.Errorf("current session: %v", s)
				}
			}
		}
		if current != 1 || strings.Contains(res.body, phone.cookie[33:]) {
			t.Fatalf("current marks: %d", current)
		}

		// HTML: readable, escaped, with a form per other session.
		res = tablet.do("GET", "/.auth/sessions", "Accept", "text/html")
		page := res.body
		for _, want := range []string{"Where you're signed in", "This device", "iPhone", "Windows PC", "Chrome on iOS",
			"Edge on Windows", "Sign out all other sessions", "/.auth/sessions/" + pcID + "/revoke", "just now"} {
			if !strings.Contains(page, want) {
				t.Errorf("page lacks %q", want)
			}
		}
		if strings.Contains(page, "<script>") || !strings.Contains(page, "&lt;script&gt;") {
			t.Error("user-controlled text is not escaped")
		}
		if res.Header.Get("Cache-Control") != "no-store" || !strings.Contains(res.Header.Get("Content-Security-Policy"), "default-src 'none'") {
			t.Errorf("page headers: %v", res.Header)
		}
		m := csrfField.FindStringSubmatch(page)
		if m == nil {
			t.Fatal("no CSRF token in the forms")
		}
		csrf := m[1]
		form := func(c *client, path string, values url.Values, header ...string) *response {
			req, _ := http.NewRequest("POST", g.base+path, strings.NewReader(values.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Cookie", "session="+c.cookie)
			for i := 0; i+1 < len(header); i += 2 {
				req.Header.Set(header[i], header[i+1])
			}
			r, err := c.http.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			r.Body.Close()
			return &response{Response: r}
		}
		revokePC := "/.auth/sessions/" + pcID + "/revoke"
		if r := form(tablet, revokePC, url.Values{}); r.StatusCode != 403 {
			t.Errorf("without CSRF token: %d", r.StatusCode)
		}
		if r := form(tablet, revokePC, url.Values{"csrf": {strings.Repeat("0", 32)}}); r.StatusCode != 403 {
			t.Errorf("with a forged CSRF token: %d", r.StatusCode)
		}
		if r := form(tablet, revokePC, url.Values{"csrf": {csrf}}, "Origin", "https://evil.example"); r.StatusCode != 403 {
			t.Errorf("cross-site: %d", r.StatusCode)
		}
		if r := form(phone.client, revokePC, url.Values{"csrf": {csrf}}); r.StatusCode != 403 {
			t.Errorf("another session's CSRF token: %d", r.StatusCode)
		}
		for _, id := range []string{strangerID, "0123456789abcdef0123456789abcdef", "not-an-id"} {
			for _, token := range []string{csrf, ""} { // 404 whether or not the token is there
				if r := form(tablet, "/.auth/sessions/"+id+"/revoke", url.Values{"csrf": {token}}); r.StatusCode != 404 {
					t.Errorf("revoke %s (token %q): %d", id, token, r.StatusCode)
				}
			}
		}
		if stranger.do("GET", "/").StatusCode != 200 {
			t.Fatal("another user's session was ended")
		}
		r := form(tablet, revokePC, url.Values{"csrf": {csrf}}, "Origin", g.base)
		if r.StatusCode != 303 || r.Header.Get("Location") != "/.auth/sessions" {
			t.Fatalf("sign out one: %d %q", r.StatusCode, r.Header.Get("Location"))
		}
		if pc.from("198.51.100.10", "GET", "/").StatusCode != 401 {
			t.Fatal("the signed-out session still works")
		}
		if r := form(tablet, revokePC, url.Values{"csrf": {csrf}}); r.StatusCode != 404 {
			t.Errorf("signing out an ended session: %d", r.StatusCode)
		}
		// The ended one shows under "Recently signed out".
		page = tablet.do("GET", "/.auth/sessions", "Accept", "text/html").body
		if !strings.Contains(page, "Recently signed out") || !strings.Contains(page, "Signed out remotely") {
			t.Error("no recently signed out section")
		}
		// Sign out all the others, from a JSON client: the token comes in a
		// response header of the JSON list.
		jsonList := tablet.do("GET", "/.auth/sessions", "Accept", "application/json")
		if jsonList.Header.Get("X-CSRF-Token") != csrf || tablet.do("GET", "/.auth/me").Header.Get("X-CSRF-Token") != csrf {
			t.Fatalf("X-CSRF-Token header %q, want the forms' %q", jsonList.Header.Get("X-CSRF-Token"), csrf)
		}
		if r := tablet.do("POST", "/.auth/sessions/revoke-others", "X-CSRF-Token", jsonList.Header.Get("X-CSRF-Token"), "Accept", "application/json"); r.StatusCode != 204 {
			t.Fatalf("revoke others: %d", r.StatusCode)
		}
		if phone.from("198.51.100.9", "GET", "/").StatusCode != 401 || tablet.do("GET", "/").StatusCode != 200 {
			t.Fatal("revoke others ended the wrong sessions")
		}
		// Without a session: the page sends browsers to sign in.
		if r := newClient(t, g).do("GET", "/.auth/sessions", "Accept", "text/html"); r.StatusCode != 303 || r.Header.Get("Location") != "/login?next=%2F.auth%2Fsessions" {
			t.Errorf("page without a session: %d %q", r.StatusCode, r.Header.Get("Location"))
		}
		if r := newClient(t, g).do("POST", "/.auth/sessions/revoke-others"); r.StatusCode != 401 {
			t.Errorf("revoke others without a session: %d", r.StatusCode)
		}
	})
}
