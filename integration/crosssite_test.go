package integration

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/sessionauth/caddy-sessionauth/internal/redisserver"
)

// The headers a browser sends for what another site's page makes it
// fetch: an <img>, and a no-cors fetch or a form posted into a frame.
var (
	crossSiteImage = []string{"Sec-Fetch-Site", "cross-site", "Sec-Fetch-Mode", "no-cors", "Sec-Fetch-Dest", "image", "Referer", "https://evil.example/"}
	crossSiteFetch = []string{"Sec-Fetch-Site", "cross-site", "Sec-Fetch-Mode", "no-cors", "Sec-Fetch-Dest", "empty", "Origin", "https://evil.example"}
)

// Any page could lock its visitors out of signing in by making their
// browsers post to a login path (or load it as an image) until login_rate
// is spent. Such cross-site requests that are no navigation are refused
// with 403 before they count or reach the app; a cross-site top-level
// navigation (a link to the sign-in page) and the site's own sign-ins
// still work.
func TestCrossSiteLoginAttemptsSpendNothing(t *testing.T) {
	stores(t, func(t *testing.T, store string, _ *redisserver.Server) {
		up := newUpstream(t)
		g := loadCaddy(t, site(store+"\nlogin_rate 3 1m"), up)
		c := newClient(t, g)
		for i := range 10 {
			for _, hdr := range [][]string{crossSiteFetch, crossSiteImage} {
				method := "POST"
				if hdr[5] == "image" {
					method = "GET"
				}
				if res := c.do(method, "/login?user=planted&status=303", hdr...); res.StatusCode != http.StatusForbidden || sessionCookie(res, "session") != nil {
					t.Fatalf("cross-site %s %s %d: %d", method, hdr[5], i, res.StatusCode)
				}
			}
		}
		if n := up.count("/login"); n != 0 {
			t.Fatalf("cross-site attempts reached the app %d times", n)
		}
		// A link from another site to the sign-in page is a navigation.
		if res := c.do("GET", "/login", "Sec-Fetch-Site", "cross-site", "Sec-Fetch-Mode", "navigate", "Sec-Fetch-Dest", "document"); res.StatusCode != http.StatusOK {
			t.Fatalf("a cross-site navigation to the login page: %d", res.StatusCode)
		}
		// login_rate (3) is whole: three of the site's own sign-ins pass.
		for i := range 3 {
			res := c.do("POST", fmt.Sprintf("/login?user=alice%d&status=303", i), "Sec-Fetch-Site", "same-origin", "Sec-Fetch-Mode", "navigate", "Sec-Fetch-Dest", "document")
			if res.StatusCode != http.StatusSeeOther || sessionCookie(res, "session") == nil {
				t.Fatalf("own sign-in %d after the cross-site page: %d", i+1, res.StatusCode)
			}
		}
	})
}

// The same for a provider start: <img src="/.auth/sign-in/corp"> on any
// page would spend the starts' login_rate; it gets 403, stores nothing
// and counts nothing, and the visitor's own start goes to the provider.
func TestCrossSiteProviderStartsSpendNothing(t *testing.T) {
	stores(t, func(t *testing.T, store string, _ *redisserver.Server) {
		port := redisserver.FreePort(t)
		o := startOP(t, fmt.Sprintf("http://127.0.0.1:%d/.auth/callback/corp", port))
		g, _ := loadOIDCCaddy(t, port, oidcSite(port, store+"\nlogin_rate 2 1m", providerBlock("corp", o.issuer, "")))
		victim := newBrowser(t, g.base)
		for i := range 10 {
			for _, hdr := range [][]string{crossSiteImage, crossSiteFetch} {
				p := victim.get("/.auth/sign-in/corp?next=%2Fapp", hdr...)
				if p.status != http.StatusForbidden || p.header.Get("Location") != "" {
					t.Fatalf("cross-site start %d (%s): %d %s", i+1, hdr[5], p.status, p.header.Get("Location"))
				}
			}
		}
		for i := range 2 {
			p := victim.get("/.auth/sign-in/corp?next=%2Fapp", "Sec-Fetch-Site", "cross-site", "Sec-Fetch-Mode", "navigate", "Sec-Fetch-Dest", "document")
			to, _ := url.Parse(p.header.Get("Location"))
			if p.status != http.StatusSeeOther || !strings.HasPrefix(p.header.Get("Location"), o.issuer) || to.Query().Get("state") == "" {
				t.Fatalf("the visitor's own start %d: %d %s", i+1, p.status, p.header.Get("Location"))
			}
		}
	})
}

// Logout CSRF: an <img> or a link on a sibling subdomain (same-site),
// another site, or a client without Sec-Fetch-* GETs the logout: the
// session lives on, and a browser gets a page whose button posts the
// sign-out. That button's POST (same-origin) signs out, as a same-origin
// or typed GET does; a same-site POST is refused.
func TestLogoutGetFromElsewhereEndsNothing(t *testing.T) {
	stores(t, func(t *testing.T, store string, _ *redisserver.Server) {
		up := newUpstream(t)
		g := loadCaddy(t, site(store), up)
		c := newClient(t, g)
		c.signIn("alice")
		for name, hdr := range map[string][]string{
			"sibling link":       {"Accept", "text/html", "Sec-Fetch-Site", "same-site", "Sec-Fetch-Mode", "navigate", "Sec-Fetch-Dest", "document"},
			"sibling image":      {"Accept", "image/*", "Sec-Fetch-Site", "same-site", "Sec-Fetch-Mode", "no-cors", "Sec-Fetch-Dest", "image"},
			"other site link":    {"Accept", "text/html", "Sec-Fetch-Site", "cross-site", "Sec-Fetch-Mode", "navigate", "Sec-Fetch-Dest", "document"},
			"without Sec-Fetch":  {"Accept", "text/html"},
			"JSON, no Sec-Fetch": {"Accept", "application/json"},
		} {
			res := c.do("GET", "/.auth/logout?next=%2Fbye", hdr...)
			if res.StatusCode == http.StatusSeeOther || sessionCookie(res, "session") != nil {
				t.Fatalf("GET logout, %s: %d %v", name, res.StatusCode, res.Header.Values("Set-Cookie"))
			}
			if hdr[1] == "text/html" && (res.StatusCode != http.StatusOK ||
				!strings.Contains(res.body, `<form method="post" action="/.auth/logout?next=%2fbye"><button type="submit">Sign out</button></form>`)) {
				t.Fatalf("GET logout, %s: no sign-out page: %d %s", name, res.StatusCode, res.body)
			}
			if res := c.do("GET", "/app"); res.StatusCode != http.StatusOK {
				t.Fatalf("after a GET logout, %s: the session ended (%d)", name, res.StatusCode)
			}
		}
		if res := c.do("POST", "/.auth/logout", "Sec-Fetch-Site", "same-site", "Origin", "http://sibling.localhost"); res.StatusCode != http.StatusForbidden {
			t.Fatalf("a sibling subdomain's POST: %d", res.StatusCode)
		}
		// The page's button: a same-origin form POST.
		res := c.do("POST", "/.auth/logout?next=%2Fbye", "Sec-Fetch-Site", "same-origin", "Sec-Fetch-Mode", "navigate", "Origin", g.base)
		if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/bye" {
			t.Fatalf("the page's Sign out button: %d %q", res.StatusCode, res.Header.Get("Location"))
		}
		if res := c.do("GET", "/app"); res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("after signing out with the button: %d", res.StatusCode)
		}
		for _, site := range []string{"same-origin", "none"} {
			cc := c.clone()
			cc.signIn("alice")
			if res := cc.do("GET", "/.auth/logout", "Accept", "text/html", "Sec-Fetch-Site", site, "Sec-Fetch-Mode", "navigate"); res.StatusCode != http.StatusSeeOther {
				t.Fatalf("a %s GET logout: %d", site, res.StatusCode)
			}
			if res := cc.do("GET", "/app"); res.StatusCode != http.StatusUnauthorized {
				t.Fatalf("after a %s GET logout: %d", site, res.StatusCode)
			}
		}
	})
}

// Cookie tossing past the three-cookie window, on every store: junk,
// junk, the planter's and the victim's session cookies are no session
// (not the planter's), nothing is cleared, and the victim's own cookie
// alone still works.
func TestCookieTossingPastTheWindow(t *testing.T) {
	stores(t, func(t *testing.T, store string, _ *redisserver.Server) {
		up := newUpstream(t)
		g := loadCaddy(t, site(store), up)
		victim, planter := newClient(t, g), newClient(t, g)
		victim.signIn("victim-" + randomID())
		planter.signIn("planter-" + randomID())
		junk := func(i int) string { return victim.cookie[:len(victim.cookie)-1] + string(rune('a'+i)) }
		tossed := newClient(t, g)
		for _, cookie := range []string{
			"session=" + junk(0) + "; session=" + junk(1) + "; session=" + planter.cookie + "; session=" + victim.cookie,
			"session=" + junk(2) + "; session=" + planter.cookie,
		} {
			res := tossed.do("GET", "/app", "Cookie", cookie, "Accept", "application/json")
			if res.StatusCode != http.StatusUnauthorized || len(res.Header.Values("Set-Cookie")) != 0 {
				t.Fatalf("%q: %d as %q, Set-Cookie %v", cookie, res.StatusCode, res.headers["X-Auth-User"], res.Header.Values("Set-Cookie"))
			}
		}
		if res := victim.do("GET", "/app"); res.StatusCode != http.StatusOK || !strings.HasPrefix(res.headers["X-Auth-User"], "victim-") {
			t.Fatalf("the victim's own cookie afterwards: %d %v", res.StatusCode, res.headers)
		}
	})
}
