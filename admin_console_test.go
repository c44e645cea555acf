package sessionauth

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/sessionauth/caddy-sessionauth/accounts"
	"github.com/sessionauth/caddy-sessionauth/internal/redisserver"
	"github.com/sessionauth/caddy-sessionauth/session"
	"github.com/sessionauth/caddy-sessionauth/session/storetest"
)

// adminHandler is accountHandler with admin_role admin, which alice
// holds and bob does not.
func adminHandler(t *testing.T, store *StoreConfig) (*Handler, *storetest.Clock) {
	t.Helper()
	return accountHandler(t, store, func(h *Handler) {
		h.AdminRole = "admin"
		h.SignIn.Accounts[0].Roles = []string{"admin"}
	})
}

// accept sends a GET with Accept: what.
func (c *formClient) accept(target, what string) *httptest.ResponseRecorder {
	c.t.Helper()
	r := httptest.NewRequest("GET", target, nil)
	r.Header.Set("Accept", what)
	return c.send(r)
}

func (c *formClient) signInPassword(user string) {
	c.t.Helper()
	if w := c.signInCode(user, ""); c.cookies["session"] == nil {
		c.t.Fatalf("%s's sign-in: %d %s", user, w.Code, w.Body)
	}
}

func adminStats(t *testing.T, c *formClient) statsJSON {
	t.Helper()
	w := c.accept("/.auth/admin/stats", "application/json")
	if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("stats: %d %s", w.Code, w.Body)
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(w.Body.Bytes(), &keys); err != nil {
		t.Fatal(err)
	}
	want := []string{"active_sessions", "by_browser", "by_country", "by_device_type", "daily", "hourly", "recent_risk"}
	var got []string
	for k := range keys {
		got = append(got, k)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("stats keys %v, want %v", got, want)
	}
	var st statsJSON
	if err := json.Unmarshal(w.Body.Bytes(), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Hourly) != consoleHours || len(st.Daily) != consoleDays {
		t.Fatalf("%d hours and %d days", len(st.Hourly), len(st.Daily))
	}
	return st
}

// The console and its figures need the role: an anonymous API client
// gets 401, a signed-in person without the role 403 (a page, or JSON),
// and without admin_role there is no console.
func TestAdminConsoleNeedsTheRole(t *testing.T) {
	h, _ := adminHandler(t, nil)
	anon := newFormClient(t, h, "192.0.2.30")
	if w := anon.accept("/.auth/admin/stats", "application/json"); w.Code != http.StatusUnauthorized {
		t.Fatalf("anonymous: %d", w.Code)
	}
	bob := newFormClient(t, h, "192.0.2.31")
	bob.signInCode("bob", mustTOTP(t, h))
	if w := bob.get("/.auth/admin"); w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "for the site&#39;s administrators") {
		t.Fatalf("bob's page: %d %s", w.Code, w.Body)
	}
	for _, path := range []string{"/.auth/admin", "/.auth/admin/stats"} {
		if w := bob.accept(path, "application/json"); w.Code != http.StatusForbidden || strings.TrimSpace(w.Body.String()) != `{"error":"forbidden"}` {
			t.Fatalf("bob's JSON %s: %d %s", path, w.Code, w.Body)
		}
	}
	alice := newFormClient(t, h, "192.0.2.32")
	alice.signInPassword("alice")
	// bob, with a fresh session and its CSRF token, still may not act.
	w := bob.form("/.auth/admin/sessions/"+alice.sessionID()+"/revoke", url.Values{"csrf": {csrfOf(t, h, bob)}})
	if w.Code != http.StatusForbidden || !active(t, h, alice.sessionID()) {
		t.Fatalf("bob revoking alice: %d, alice active %v", w.Code, active(t, h, alice.sessionID()))
	}
	if w := alice.get("/.auth/admin"); w.Code != http.StatusOK {
		t.Fatalf("alice's console: %d %s", w.Code, w.Body)
	}

	off, _ := accountHandler(t, nil, nil)
	c := newFormClient(t, off, "192.0.2.33")
	c.signInPassword("alice")
	if w := c.accept("/.auth/admin", "application/json"); w.Code != http.StatusNotFound {
		t.Fatalf("without admin_role: %d", w.Code)
	}
}

func mustTOTP(t *testing.T, h *Handler) string {
	t.Helper()
	code, err := accounts.TOTPCode(stepUpTOTP, h.now())
	if err != nil {
		t.Fatal(err)
	}
	return code
}

func redisStoreConfig(t *testing.T) *StoreConfig {
	return &StoreConfig{Type: "redis", URL: "redis://" + redisserver.Start(t).Addr, KeyPrefix: "adm:"}
}

// csrfOf is the CSRF token of c's session.
func csrfOf(t *testing.T, h *Handler, c *formClient) string {
	t.Helper()
	s, err := h.store.Get(context.Background(), c.sessionID())
	if err != nil {
		t.Fatal(err)
	}
	return csrfToken(s)
}

func active(t *testing.T, h *Handler, id string) bool {
	t.Helper()
	s, err := h.store.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return s.Active()
}

// The figures are the sign-ins, failed sign-ins and revocations the test
// made, on each store; the page draws them as SVG charts with a table of
// the numbers behind each, and lists the failed sign-in.
func TestAdminConsoleFigures(t *testing.T) {
	for _, store := range []*StoreConfig{{Type: "memory"}, nil, redisStoreConfig(t)} {
		h, _ := adminHandler(t, store)
		alice := newFormClient(t, h, "192.0.2.40")
		alice.signInPassword("alice")
		before := adminStats(t, alice)
		bob := newFormClient(t, h, "192.0.2.41")
		bob.signInCode("bob", mustTOTP(t, h))
		wrong := newFormClient(t, h, "198.51.100.9")
		p := wrong.get("/.auth/sign-in")
		wrong.post(url.Values{"csrf": {field(p.Body.String(), "csrf")}, "username": {"bob"}, "password": {"wrong"}})
		if w := alice.form("/.auth/admin/sessions/"+bob.sessionID()+"/revoke", url.Values{"csrf": {alice.csrf()}}); w.Code != http.StatusSeeOther {
			t.Fatalf("revoke: %d %s", w.Code, w.Body)
		}
		after := adminStats(t, alice)
		last := func(s statsJSON) bucketJSON { return s.Hourly[len(s.Hourly)-1] }
		if a, b := last(after), last(before); a.SignIns-b.SignIns != 1 || a.FailedSignIns-b.FailedSignIns != 1 || a.Revocations-b.Revocations != 1 {
			t.Fatalf("%s: this hour %+v, before %+v", h.Store.Type, a, b)
		}
		if d := after.Daily[len(after.Daily)-1]; d.SignIns < 2 || d.FailedSignIns < 1 || d.Revocations < 1 {
			t.Fatalf("%s: today %+v", h.Store.Type, d)
		}
		if after.ActiveSessions != before.ActiveSessions {
			t.Fatalf("%s: active %d, before %d", h.Store.Type, after.ActiveSessions, before.ActiveSessions)
		}
		var failed *session.Event
		for i, e := range after.RecentRisk {
			if e.Type == session.EventLoginFailed && e.UserID == "bob" {
				failed = &after.RecentRisk[i]
				break
			}
		}
		if failed == nil || failed.IP != "198.51.100.9" || failed.Reason == "" {
			t.Fatalf("%s: recent %+v", h.Store.Type, after.RecentRisk)
		}

		body := alice.get("/.auth/admin").Body.String()
		for _, want := range []string{`<h1>Admin console</h1>`, `data-chart="hourly"`, `data-chart="daily"`, `data-chart="by-country"`,
			`data-chart="by-device"`, `data-chart="by-browser"`, `<title id="hourly-t">`, `fill="#1f5fd1"`, `fill="#b42318"`, `fill="#c27c0e"`,
			`<summary>The numbers</summary>`, "2 sign-ins, 1 failed sign-in and 1 revocation in all.", "Failed sign-in", "198.51.100.9", `name="confirm"`} {
			if !strings.Contains(body, want) {
				t.Fatalf("%s: the console lacks %q:\n%s", h.Store.Type, want, body)
			}
		}
		if strings.Contains(body, "<script") {
			t.Fatal("the console has a script")
		}
	}
}

// A search by user id or IP lists the active sessions; the actions end
// the right sessions, are audited with actor admin:<id>, and need the
// same origin, the CSRF token, and a sign-in within 10 minutes.
func TestAdminConsoleActions(t *testing.T) {
	h, clock := adminHandler(t, nil)
	alice := newFormClient(t, h, "192.0.2.50")
	alice.signInPassword("alice")
	bob1 := newFormClient(t, h, "192.0.2.51")
	bob1.signInCode("bob", mustTOTP(t, h))
	bob2 := newFormClient(t, h, "192.0.2.52")
	clock.Advance(31 * time.Second) // a TOTP code is used once
	bob2.signInCode("bob", mustTOTP(t, h))
	csrf := alice.csrf()

	page := alice.get("/.auth/admin?q=bob").Body.String()
	for _, id := range []string{bob1.sessionID(), bob2.sessionID()} {
		if !strings.Contains(page, `action="/.auth/admin/sessions/`+id+`/revoke"`) {
			t.Fatalf("the search for bob lacks %s:\n%s", id, page)
		}
	}
	if !strings.Contains(page, `action="/.auth/admin/users/bob/revoke"`) {
		t.Fatalf("no sign out everywhere for bob:\n%s", page)
	}
	byIP := alice.get("/.auth/admin?q=192.0.2.52").Body.String()
	if !strings.Contains(byIP, bob2.sessionID()) || strings.Contains(byIP, bob1.sessionID()) {
		t.Fatalf("the search by IP:\n%s", byIP)
	}

	target := "/.auth/admin/sessions/" + bob1.sessionID() + "/revoke"
	for name, w := range map[string]*httptest.ResponseRecorder{
		"cross-origin": alice.form(target, url.Values{"csrf": {csrf}}, "Origin", "https://evil.example"),
		"cross-site":   alice.form(target, url.Values{"csrf": {csrf}}, "Sec-Fetch-Site", "cross-site"),
		"no CSRF":      alice.form(target, url.Values{}),
		"wrong CSRF":   alice.form(target, url.Values{"csrf": {"0123456789abcdef0123456789abcdef"}}),
	} {
		if w.Code != http.StatusForbidden || !active(t, h, bob1.sessionID()) {
			t.Fatalf("%s: %d, bob1 active %v", name, w.Code, active(t, h, bob1.sessionID()))
		}
	}

	w := alice.form(target, url.Values{"csrf": {csrf}, "q": {"bob"}})
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/.auth/admin?done=session&n=1&q=bob" {
		t.Fatalf("revoke: %d %q", w.Code, w.Header().Get("Location"))
	}
	if active(t, h, bob1.sessionID()) || !active(t, h, bob2.sessionID()) || !active(t, h, alice.sessionID()) {
		t.Fatal("the revoke ended the wrong sessions")
	}
	if !strings.Contains(alice.get(w.Header().Get("Location")).Body.String(), "Signed out 1 session.") {
		t.Fatal("no notice after the revoke")
	}
	wantRevokedBy(t, h, "bob", bob1.sessionID(), "admin:alice")

	r := httptest.NewRequest("POST", "/.auth/admin/users/bob/revoke", nil)
	r.Header.Set("Accept", "application/json")
	r.Header.Set("X-CSRF-Token", csrf)
	w = alice.send(r)
	if w.Code != http.StatusOK || strings.TrimSpace(w.Body.String()) != `{"revoked":["`+bob2.sessionID()+`"]}` {
		t.Fatalf("sign out bob everywhere: %d %s", w.Code, w.Body)
	}
	wantRevokedBy(t, h, "bob", bob2.sessionID(), "admin:alice")

	// Past 10 minutes, an action asks for a step-up and ends nothing.
	bob3 := newFormClient(t, h, "192.0.2.53")
	clock.Advance(31 * time.Second)
	bob3.signInCode("bob", mustTOTP(t, h))
	clock.Advance(11 * time.Minute)
	w = alice.form("/.auth/admin/users/bob/revoke", url.Values{"csrf": {csrf}})
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/.auth/sign-in?step_up=1&next=%2F.auth%2Fadmin" || !active(t, h, bob3.sessionID()) {
		t.Fatalf("stale: %d %q", w.Code, w.Header().Get("Location"))
	}
	r = httptest.NewRequest("POST", "/.auth/admin/users/bob/revoke", nil)
	r.Header.Set("Accept", "application/json")
	r.Header.Set("X-CSRF-Token", csrf)
	if w := alice.send(r); w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "step_up_required") {
		t.Fatalf("stale JSON: %d %s", w.Code, w.Body)
	}
	if !strings.Contains(alice.get("/.auth/admin").Body.String(), "signing anyone out asks you to sign in again first") {
		t.Fatal("the console does not say an action needs a step-up")
	}
}

// "Sign out everyone" needs its confirmation, ends every session but the
// admin's own here, and is audited.
func TestAdminConsoleSignOutEveryone(t *testing.T) {
	h, _ := adminHandler(t, &StoreConfig{Type: "memory"})
	alice := newFormClient(t, h, "192.0.2.60")
	alice.signInPassword("alice")
	aliceToo := newFormClient(t, h, "192.0.2.61")
	aliceToo.signInPassword("alice")
	bob := newFormClient(t, h, "192.0.2.62")
	bob.signInCode("bob", mustTOTP(t, h))
	dave := signIn(t, h, "dave") // a hand-off
	daveID, _, _ := session.ParseCredential(dave.Value)
	csrf := alice.csrf()
	if w := alice.form("/.auth/admin/revoke-everyone", url.Values{"csrf": {csrf}, "confirm": {"yes"}}); w.Code != http.StatusBadRequest || !active(t, h, bob.sessionID()) {
		t.Fatalf("without the word: %d", w.Code)
	}
	w := alice.form("/.auth/admin/revoke-everyone", url.Values{"csrf": {csrf}, "confirm": {"everyone"}})
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/.auth/admin?done=everyone&n=3" {
		t.Fatalf("sign out everyone: %d %q %s", w.Code, w.Header().Get("Location"), w.Body)
	}
	if !active(t, h, alice.sessionID()) || active(t, h, aliceToo.sessionID()) || active(t, h, bob.sessionID()) || active(t, h, daveID) {
		t.Fatal("sign out everyone ended the wrong sessions")
	}
	wantRevokedBy(t, h, "dave", daveID, "admin:alice")
	if st := adminStats(t, alice); st.ActiveSessions != 1 {
		t.Fatalf("%d active sessions after signing out everyone", st.ActiveSessions)
	}
}

// A user id with a "/" and a space is signed out everywhere by the form
// the search shows for it.
func TestAdminConsoleUserIDWithSlash(t *testing.T) {
	h, _ := adminHandler(t, &StoreConfig{Type: "memory"})
	alice := newFormClient(t, h, "192.0.2.70")
	alice.signInPassword("alice")
	team := signIn(t, h, "team/ops a")
	teamID, _, _ := session.ParseCredential(team.Value)
	page := alice.get("/.auth/admin?q=" + url.QueryEscape("team/ops a")).Body.String()
	action := "/.auth/admin/users/team%2Fops%20a/revoke"
	if !strings.Contains(page, `action="`+action+`"`) {
		t.Fatalf("no sign out everywhere for team/ops a:\n%s", page)
	}
	if w := alice.form(action, url.Values{"csrf": {alice.csrf()}}); w.Code != http.StatusSeeOther || active(t, h, teamID) {
		t.Fatalf("sign out team/ops a everywhere: %d, still active %v", w.Code, active(t, h, teamID))
	}
	if w := alice.form("/.auth/admin/users/team/ops", url.Values{"csrf": {alice.csrf()}}); w.Code != http.StatusNotFound {
		t.Fatalf("a users path without /revoke: %d", w.Code)
	}
}

func wantRevokedBy(t *testing.T, h *Handler, user, id, actor string) {
	t.Helper()
	evs, err := h.store.Events(context.Background(), user, time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		if e.Type == session.EventRevoke && e.SessionID == id && e.Actor == actor && e.Reason == session.EndRevoked {
			return
		}
	}
	t.Fatalf("no revoke event of %s by %s: %+v", id, actor, evs)
}

// adminPageFixture is the console with a little of everything, and text
// that must be escaped (TestPagesRenderAsBefore).
func adminPageFixture() adminPageData {
	at := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	var hours, days []session.StatsBucket
	for i := range consoleHours {
		hours = append(hours, session.StatsBucket{At: at.Add(time.Duration(i-consoleHours+1) * time.Hour), SignIns: int64(i % 5), FailedSignIns: int64(i % 3), Revocations: int64(i % 2)})
	}
	for i := range consoleDays {
		days = append(days, session.StatsBucket{At: at.AddDate(0, 0, i-consoleDays+1), SignIns: int64(i * 3), FailedSignIns: int64(i % 4)})
	}
	return adminPageData{Site: "app.example.com", Endpoints: "/.auth", CSRF: "tok\"en", Name: "Alice <A>", Active: 7, Confirm: adminConfirm,
		Hourly: drawTimeChart("hourly", "Per hour", hours, "15:04", 6),
		Daily:  drawTimeChart("daily", "Per day", days, "2 Jan", 7),
		Shares: []shareChart{drawShareChart("by-country", "By country", map[string]int{"DE": 4, "US": 2, "<b>": 1}), drawShareChart("by-browser", "By browser", nil)},
		Recent: []recentRow{{When: "just now", At: "Mon, 01 Jun 2026 12:00:00 UTC", Who: "bob<script>", What: "Failed sign-in", Where: "Berlin, DE (192.0.2.1)", Why: "password"}},
		Query:  "bob\"", Searched: true, Notice: "Signed out 1 session.", StaleFor: "10 minutes",
		Results: []adminSessionRow{{ID: "abc", UserID: "bob\"", Device: "iPhone", Browser: "Safari", OS: "iOS", IP: "192.0.2.1", Place: "Berlin, DE", SignedIn: "2 hours ago", LastActive: "just now", Risk: "new-device"}},
		Users:   []adminUserRow{{ID: "bob\"", Path: "bob%22"}},
	}
}

// admin_role takes one role name; a mistake names the file and line.
func TestAdminRoleCaddyfile(t *testing.T) {
	var h Handler
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("session_auth {\n  admin_role ops\n}")); err != nil || h.AdminRole != "ops" {
		t.Fatalf("admin_role ops: %v %q", err, h.AdminRole)
	}
	for input, want := range map[string]string{
		"session_auth {\n  admin_role\n}":                       "wrong argument count",
		"session_auth {\n  admin_role a b\n}":                   "wrong argument count",
		"session_auth {\n  admin_role \"a,b\"\n}":               `admin_role "a,b" must be one role name`,
		"session_auth {\n  admin_role a\n  admin_role b\n}":     "admin_role given more than once",
		"session_auth {\n  lifetime 1h\n  admin_role \" a\"\n}": "Testfile:3",
	} {
		var h Handler
		err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input))
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "Testfile:") {
			t.Errorf("%q: %v, want %q with file:line", input, err, want)
		}
	}
}
