package integration

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// readmeSite turns a site block of the README or docs/ into one on this test's ports: the
// README's host and upstream replaced, Caddy's global options added.
func readmeSite(t *testing.T, file, heading string) string {
	block := docBlock(t, file, heading, "caddy")
	if !strings.Contains(block, "app.example.com {") || !strings.Contains(block, "localhost:3000") {
		t.Fatalf("README block under %q changed shape:\n%s", heading, block)
	}
	block = strings.Replace(block, "app.example.com {", "http://127.0.0.1:{PORT} {", 1)
	block = strings.Replace(block, "localhost:3000", "{UPSTREAM}", 1)
	return "{\n\tadmin 127.0.0.1:{ADMIN}\n\tpersist_config off\n\tauto_https off\n}\n" + block
}

// The README's three "who may see what" examples, run as written.
func TestReadmeWhoMaySeeWhat(t *testing.T) {
	t.Run("admin area by role", func(t *testing.T) {
		g := loadCaddy(t, readmeSite(t, "docs/configuration.md", "### An admin area by role"), newUpstream(t))
		admin, user := newClient(t, g), newClient(t, g)
		admin.signIn("ra-"+randomID(), "roles", "admin")
		user.signIn("ru-"+randomID(), "roles", "viewer")
		if r := admin.do("GET", "/admin/users"); r.StatusCode != 200 {
			t.Errorf("admin: %d", r.StatusCode)
		}
		if r := user.do("GET", "/admin/users", "Accept", "text/html"); r.StatusCode != 403 || !strings.Contains(r.body, "You don't have access") {
			t.Errorf("viewer on /admin: %d", r.StatusCode)
		}
		if r := user.do("GET", "/reports"); r.StatusCode != 200 {
			t.Errorf("viewer elsewhere: %d", r.StatusCode)
		}
		// As the README says: /admin/* leaves /admin itself open, but
		// not /admin;x/users, which an app may read as /admin/users.
		if r := user.do("GET", "/admin"); r.StatusCode != 200 {
			t.Errorf("viewer on /admin under /admin/*: %d", r.StatusCode)
		}
		if r := user.do("GET", "/admin;x/users"); r.StatusCode != 403 {
			t.Errorf("viewer on /admin;x/users: %d", r.StatusCode)
		}
	})
	t.Run("admin area and its own page", func(t *testing.T) {
		up := newUpstream(t)
		g := loadCaddy(t, readmeSite(t, "docs/configuration.md", "### An admin area and its own page"), up)
		admin, user := newClient(t, g), newClient(t, g)
		admin.signIn("rb-"+randomID(), "roles", "admin")
		user.signIn("rv-"+randomID(), "roles", "viewer")
		for _, path := range []string{"/admin", "/admin/", "/admin/users", "/admin;x/users", "/admin."} {
			if r := admin.do("GET", path); r.StatusCode != 200 {
				t.Errorf("admin on %s: %d", path, r.StatusCode)
			}
			before := up.total()
			if r := user.do("GET", path); r.StatusCode != 403 || up.total() != before {
				t.Errorf("viewer on %s: %d", path, r.StatusCode)
			}
		}
		if r := user.do("GET", "/administrators"); r.StatusCode != 200 {
			t.Errorf("viewer on /administrators: %d", r.StatusCode)
		}
	})
	t.Run("an API by token", func(t *testing.T) {
		g := loadCaddy(t, readmeSite(t, "docs/configuration.md", "### An API by token"), newUpstream(t))
		deployer, viewer := newClient(t, g), newClient(t, g)
		deployer.signIn("td-"+randomID(), "roles", "deploy")
		viewer.signIn("tv-"+randomID(), "roles", "viewer")
		deploy, view := createToken(t, deployer, `{"name":"ci"}`), createToken(t, viewer, `{"name":"dash"}`)
		api := newClient(t, g)
		if r := api.do("POST", "/api/releases", "Authorization", "Bearer "+deploy.Token); r.StatusCode != 200 || r.headers["X-Auth-Method"] != "token" {
			t.Errorf("deploy token writes: %d %v", r.StatusCode, r.headers)
		}
		if r := api.do("GET", "/api/releases", "Authorization", "Bearer "+view.Token); r.StatusCode != 200 {
			t.Errorf("viewer token reads: %d", r.StatusCode)
		}
		r := api.do("POST", "/api/releases", "Authorization", "Bearer "+view.Token)
		var body map[string]string
		if r.StatusCode != 403 || json.Unmarshal([]byte(r.body), &body) != nil || body["error"] != "forbidden" {
			t.Errorf("viewer token writes: %d %s", r.StatusCode, r.body)
		}
		if r := deployer.postBody("/.auth/tokens", "application/json", `{"name":"x","lifetime":"31d"}`,
			"X-CSRF-Token", deployer.do("GET", "/.auth/me").Header.Get("X-CSRF-Token")); r.StatusCode != 400 {
			t.Errorf("a lifetime over the README's 30d: %d", r.StatusCode)
		}
		// max_per_user 10: the deployer has one; nine more, then 409.
		for i := range 9 {
			createToken(t, deployer, fmt.Sprintf(`{"name":"t%d"}`, i))
		}
		if r := deployer.postBody("/.auth/tokens", "application/json", `{"name":"eleventh"}`, "Accept", "application/json",
			"X-CSRF-Token", deployer.do("GET", "/.auth/me").Header.Get("X-CSRF-Token")); r.StatusCode != 409 || !strings.Contains(r.body, "You have 10 access tokens") {
			t.Errorf("an eleventh token under the README's max_per_user 10: %d %s", r.StatusCode, r.body)
		}
	})
	t.Run("a sensitive page with max_age 10m", func(t *testing.T) {
		g := loadCaddy(t, readmeSite(t, "docs/configuration.md", "### A sensitive page with a recent sign-in"), newUpstream(t))
		c := newClient(t, g)
		c.signIn("sp-" + randomID())
		// Signed in just now and carrying no risk flag: allowed. (The clock
		// side of max_age is TestRequireMaxAgeAndStepUp's.)
		if r := c.do("POST", "/account/delete"); r.StatusCode != 200 {
			t.Errorf("fresh sign-in: %d %s", r.StatusCode, r.body)
		}
	})
}
