package integration

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// catchAllSite is a site without a host matcher: every Host reaches it.
func catchAllSite(options string) string {
	return strings.Replace(site(options), "http://127.0.0.1:{PORT} {", "http://:{PORT} {", 1)
}

// A sign-in sent with another Host never yields a link on that Host: a
// site without a host matcher gets no link unless base_url is set, and
// base_url decides the link's origin whatever the Host.
func TestNotificationLinksIgnoreTheClientsHost(t *testing.T) {
	signInTwice := func(t *testing.T, g *gateway, user string, host ...string) string {
		t.Helper()
		var second *client
		for range 2 {
			second = newClient(t, g)
			req, _ := http.NewRequest("POST", g.base+"/login?user="+user+"&status=303", nil)
			req.Host = "evil.example"
			if len(host) > 0 {
				req.Host = host[0]
			}
			res, err := second.http.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusSeeOther {
				t.Fatalf("sign-in with Host %s: %d", req.Host, res.StatusCode)
			}
			for _, ck := range res.Cookies() {
				if ck.Name == "session" {
					second.cookie = ck.Value
				}
			}
		}
		return strings.SplitN(second.cookie, ".", 2)[0]
	}
	notify := func(url string) string {
		return fmt.Sprintf("store memory\nmax_sessions 0\nnotify %s {\n secret hook-secret\n events new_login\n }", url)
	}

	t.Run("no base_url", func(t *testing.T) {
		rc := newReceiver(t, 0, "")
		g := loadCaddy(t, catchAllSite(notify("http://"+rc.addr+"/hook")), newUpstream(t))
		id := signInTwice(t, g, "host-"+randomID())
		waitUntil(t, 10*time.Second, func() bool { return rc.find("new_login", id) != nil })
		if link := rc.find("new_login", id)["revoke_url"]; link != "" {
			t.Fatalf("a link was built on the client's Host: %q", link)
		}
	})
	// A wildcard host matcher accepts any subdomain the client names
	// (someone else's among them): like no host matcher, no link on it;
	// an exact host beside it still gets its link.
	t.Run("wildcard host matcher", func(t *testing.T) {
		rc := newReceiver(t, 0, "")
		text := strings.Replace(site(notify("http://"+rc.addr+"/hook")), "http://127.0.0.1:{PORT} {", "http://app.localhost:{PORT}, http://*.localhost:{PORT} {", 1)
		g := loadCaddy(t, text, newUpstream(t))
		id := signInTwice(t, g, "host-"+randomID(), "attacker.localhost")
		waitUntil(t, 10*time.Second, func() bool { return rc.find("new_login", id) != nil })
		if link := rc.find("new_login", id)["revoke_url"]; link != "" {
			t.Fatalf("a link was built on a Host the wildcard accepted: %q", link)
		}
		id = signInTwice(t, g, "host-"+randomID(), fmt.Sprintf("app.localhost:%d", g.port))
		waitUntil(t, 10*time.Second, func() bool { return rc.find("new_login", id) != nil })
		if link := rc.find("new_login", id)["revoke_url"]; !strings.HasPrefix(link, fmt.Sprintf("http://app.localhost:%d/.auth/revoke?token=%s.", g.port, id)) {
			t.Fatalf("the exact host's link: %q", link)
		}
	})
	t.Run("base_url", func(t *testing.T) {
		rc := newReceiver(t, 0, "")
		g := loadCaddy(t, catchAllSite(notify("http://"+rc.addr+"/hook")+"\nbase_url https://app.example.com/"), newUpstream(t))
		id := signInTwice(t, g, "host-"+randomID())
		waitUntil(t, 10*time.Second, func() bool { return rc.find("new_login", id) != nil })
		if link := rc.find("new_login", id)["revoke_url"]; !strings.HasPrefix(link, "https://app.example.com/.auth/revoke?token="+id+".") {
			t.Fatalf("revoke_url %q does not use base_url", link)
		}
	})
}

// HTTP trims a header value's outer whitespace: a hand-off of "alice "
// signs in alice (the README says so).
func TestHandOffUserIDIsTrimmedByHTTP(t *testing.T) {
	g := loadCaddy(t, site("store memory"), newUpstream(t))
	c := newClient(t, g)
	c.signIn("alice ")
	if res := c.do("GET", "/"); res.headers["X-Auth-User"] != "alice" {
		t.Fatalf("identity %q", res.headers["X-Auth-User"])
	}
}

// "//auth/admin/users" is not under login /auth/*: an upstream that reads
// it with `new URL(path, base)` sees host "auth", path "/admin/users".
func TestDoubleSlashIsNoLoginPath(t *testing.T) {
	up := newUpstream(t)
	g := loadCaddy(t, site("store memory\nlogin /login /auth/*"), up)
	c := newClient(t, g)
	for _, p := range []string{"//auth/admin/users", "//login", "/auth//x"} {
		if res := c.do("GET", p); res.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s: %d, want 401", p, res.StatusCode)
		}
	}
	if up.total() != 0 {
		t.Fatalf("the upstream was reached %d times without a session", up.total())
	}
	if res := c.do("GET", "/auth/callback"); res.StatusCode != http.StatusOK {
		t.Fatalf("a real login path: %d", res.StatusCode)
	}
}

// same_site none on a plain-HTTP site would send SameSite=None without
// Secure, which browsers drop: the config is refused, as secure never is.
func TestSameSiteNoneNeedsHTTPS(t *testing.T) {
	text := strings.NewReplacer("{PORT}", "0", "{ADMIN}", "0", "{UPSTREAM}", "127.0.0.1:1").
		Replace(site("store memory\ncookie {\n same_site none\n }"))
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(text), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		t.Fatal(err)
	}
	if err := caddy.Load(cfg, true); err == nil || !strings.Contains(err.Error(), "same_site none") {
		t.Fatalf("same_site none on plain HTTP: %v", err)
	}
	t.Cleanup(stopCaddy)
	// With secure always (TLS ends at a proxy in front) it is accepted.
	g := loadCaddy(t, site("store memory\ncookie {\n same_site none\n secure always\n }"), newUpstream(t))
	res := newClient(t, g).do("POST", "/login?user=nina&status=303")
	if sc := strings.Join(res.Header.Values("Set-Cookie"), "; "); !strings.Contains(sc, "SameSite=None") || !strings.Contains(sc, "Secure") {
		t.Fatalf("Set-Cookie %q", sc)
	}
}
