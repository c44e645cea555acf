package integration

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/sessionauth/caddy-sessionauth/internal/endtext"
	"github.com/sessionauth/caddy-sessionauth/internal/redisserver"
)

// localTrial loads docs/forward-auth.md's "Trying it on one machine"
// Caddyfile as written, with its ports on free ones and its app on appAddr:
// it answers the gateway (base on http://auth.sso.localhost:<port>) and the
// app's base URL.
func localTrial(t *testing.T, appAddr string) (*gateway, string) {
	t.Helper()
	ownDataDir(t)
	block := docBlock(t, "docs/forward-auth.md", "### Trying it on one machine", "caddyfile")
	for _, want := range []string{"\tauto_https off\n", "http://auth.sso.localhost:8080 {", "base_url http://auth.sso.localhost:8080",
		"domain sso.localhost", "allow_hosts *.sso.localhost", "http://app.sso.localhost:8081 {", "forward_auth 127.0.0.1:8080 {",
		"header_up Host auth.sso.localhost\n", "reverse_proxy localhost:3000"} {
		if !strings.Contains(block, want) {
			t.Fatalf("the doc's one-machine Caddyfile changed shape (no %q):\n%s", want, block)
		}
	}
	g := &gateway{t: t, port: redisserver.FreePort(t)}
	appPort, adminPort := redisserver.FreePort(t), redisserver.FreePort(t)
	g.base = fmt.Sprintf("http://auth.sso.localhost:%d", g.port)
	g.admin = fmt.Sprintf("http://127.0.0.1:%d", adminPort)
	g.load(strings.NewReplacer(
		"\tauto_https off\n", fmt.Sprintf("\tadmin 127.0.0.1:%d\n\tpersist_config off\n\tauto_https off\n", adminPort),
		"localhost:3000", appAddr,
		":8080", fmt.Sprintf(":%d", g.port),
		":8081", fmt.Sprintf(":%d", appPort),
	).Replace(block))
	t.Cleanup(stopCaddy)
	return g, fmt.Sprintf("http://app.sso.localhost:%d", appPort)
}

// cookiesFor answers the browser's cookies that it would send to target.
func (b *tab) cookiesFor(target string) []*network.Cookie {
	b.t.Helper()
	res, err := chromedp.Call(b.ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{target}})
	b.step("reading the cookies for "+target, err)
	return res.Cookies
}

// sessionCookiesFor is the "session" cookies the browser would send to
// target.
func (b *tab) sessionCookiesFor(target string) []*network.Cookie {
	b.t.Helper()
	var found []*network.Cookie
	for _, c := range b.cookiesFor(target) {
		if c.Name == "session" {
			found = append(found, c)
		}
	}
	return found
}

// atSignIn waits for the gateway's accounts form, sent there with next.
func (b *tab) atSignIn(g *gateway, next string) {
	b.t.Helper()
	want := g.base + "/.auth/sign-in?next=" + url.QueryEscape(next)
	b.until("the gateway's sign-in for "+next, fmt.Sprintf(`location.href.startsWith(%q) && !!document.querySelector("#password")`, want))
}

// signInAs fills the accounts form and sends it.
func (b *tab) signInAs(user, password string) {
	b.t.Helper()
	b.typeInto("#username", user)
	b.typeInto("#password", password)
	b.click(`button[type="submit"]`)
}

// The doc's one-machine forward auth in real Chromium: the app on
// app.sso.localhost sends the browser to the gateway on
// auth.sso.localhost, the browser signs in there and is back on the app,
// which shows alice; the session cookie is the parent domain's; signing
// out on the gateway clears it for the app too; a next outside
// allow_hosts is not followed; a revocation at the gateway sends the
// app's next load to the sign-in.
func TestForwardAuthInABrowser(t *testing.T) {
	chrome := chromiumPath(t)
	g, app := localTrial(t, identityApp(t))
	var evilHits atomic.Int32
	evilAddr := serveLocal(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		evilHits.Add(1)
		_, _ = w.Write([]byte("<!doctype html><title>evil</title><h1 id=evil>evil</h1>"))
	}))
	evil := "http://evil.localhost:" + strings.TrimPrefix(evilAddr, "127.0.0.1:") + "/"
	appURL := app + "/reports?q=1"

	// Signed out, the app sends the browser to the gateway's host.
	b := openTab(t, chrome, 1280, 800, 60*time.Second, appURL)
	b.atSignIn(g, appURL)
	if host := eval[string](b, `location.host`); host != strings.TrimPrefix(g.base, "http://") {
		t.Fatalf("the sign-in is on %s", host)
	}
	if got := b.sessionCookiesFor(appURL); len(got) != 0 {
		t.Fatalf("a session cookie before signing in: %+v", got[0])
	}
	s := b.screenshot("forward-auth-sign-in")
	t.Logf("screenshot sign-in page on %s %s: %d colours", strings.TrimPrefix(g.base, "http://"), s.size, s.colours)

	b.signInAs("alice", "demo")
	b.until("the app, signed in", fmt.Sprintf(`location.href === %q && !!document.querySelector("#user")`, appURL))
	if user, email := b.textOf("#user"), b.textOf("#email"); user != "alice" || email != "alice@example.com" {
		t.Fatalf("the app shows user %q, email %q", user, email)
	}
	s = b.screenshot("forward-auth-app")
	t.Logf("screenshot app page on %s %s: %d colours; shows alice", strings.TrimPrefix(app, "http://"), s.size, s.colours)

	// One cookie, set by the gateway, on the parent domain: the browser
	// sends it to the app's host and the gateway's alike, and to no other.
	onApp, onGateway := b.sessionCookiesFor(appURL), b.sessionCookiesFor(g.base+"/")
	if len(onApp) != 1 || len(onGateway) != 1 {
		t.Fatalf("session cookies: %d for the app, %d for the gateway", len(onApp), len(onGateway))
	}
	c := onApp[0]
	if c.Domain != ".sso.localhost" || c.Path != "/" || !c.HTTPOnly || c.Secure || c.SameSite != network.CookieSameSiteLax || c.Value != onGateway[0].Value {
		t.Fatalf("the session cookie: domain %q path %q httpOnly %v secure %v sameSite %q, same as the gateway's: %v",
			c.Domain, c.Path, c.HTTPOnly, c.Secure, c.SameSite, c.Value == onGateway[0].Value)
	}
	if got := b.sessionCookiesFor(evil); len(got) != 0 {
		t.Fatalf("the session cookie goes to %s too: domain %q", evil, got[0].Domain)
	}
	t.Logf("cookie %s: domain %s, path %s, HttpOnly, SameSite %s; sent to %s and %s", c.Name, c.Domain, c.Path, c.SameSite, app, g.base)

	// Signing out on the gateway's sessions page clears the cookie for
	// the app's host too, and the app sends the browser back to sign in.
	b.do("opening the gateway's sessions page", chromedp.Navigate(g.base+"/.auth/sessions"))
	b.until("the sessions page", `!!document.querySelector('form[action$="/logout?next=/"] button')`)
	b.click(`form[action$="/logout?next=/"] button`)
	b.until("the sign-in page after signing out", `location.pathname === "/.auth/sign-in" && !!document.querySelector("#password")`)
	if got := b.sessionCookiesFor(appURL); len(got) != 0 {
		t.Fatalf("after signing out the app still gets a session cookie: domain %q", got[0].Domain)
	}
	b.do("opening the app after signing out", chromedp.Navigate(appURL))
	b.atSignIn(g, appURL)

	// A next outside allow_hosts is not followed, whether it comes in the
	// sign-in page's address or is written into the form: the browser
	// lands on the gateway's own page (its "/", the sessions page).
	for _, forged := range []bool{false, true} {
		start := g.base + "/.auth/sign-in?next=" + url.QueryEscape(evil)
		if forged {
			start = g.base + "/.auth/sign-in?next=" + url.QueryEscape(appURL)
		}
		b.do("opening the sign-in", chromedp.Navigate(start))
		b.until("the sign-in form", `location.pathname === "/.auth/sign-in" && !!document.querySelector("#password")`)
		if forged {
			b.do("writing the evil next into the form", chromedp.Evaluate[chromedp.Void](
				fmt.Sprintf(`document.querySelector('input[name="next"]').value = %q`, evil)))
		} else if next := eval[string](b, `document.querySelector('input[name="next"]').value`); next != "/" {
			t.Errorf("the sign-in form carries next %q for ?next=%s", next, evil)
		}
		b.signInAs("alice", "demo")
		b.until("the gateway's sessions page", fmt.Sprintf(`location.href === %q && !!document.querySelector("section.card")`, g.base+"/.auth/sessions"))
		if n := evilHits.Load(); n != 0 {
			t.Fatalf("the browser went to %s after signing in (forged form %v): %d requests", evil, forged, n)
		}
	}
	s = b.screenshot("forward-auth-evil-next")
	t.Logf("screenshot after signing in with next=%s: %s %s, %d colours; %s got no request", evil, eval[string](b, `location.href`), s.size, s.colours, evil)

	// Signed in, the app shows alice again; a revocation at the gateway
	// sends its next load to the sign-in, with the cookie still in the
	// browser.
	b.do("opening the app, signed in", chromedp.Navigate(appURL))
	b.until("the app, signed in", fmt.Sprintf(`location.href === %q && !!document.querySelector("#user")`, appURL))
	if user := b.textOf("#user"); user != "alice" {
		t.Fatalf("the app shows user %q", user)
	}
	if code, body := g.adminDo("DELETE", "/session-auth/users/alice/sessions", ""); code != http.StatusOK {
		t.Fatalf("revoking: %d %s", code, body)
	}
	if got := b.sessionCookiesFor(appURL); len(got) != 1 {
		t.Fatalf("before the next load, %d session cookies", len(got))
	}
	b.do("reloading the app after the revocation", chromedp.Reload())
	b.atSignIn(g, appURL)
	if href := eval[string](b, `location.href`); !strings.Contains(href, "session_ended=revoked") {
		t.Errorf("after the revocation the sign-in is %s", href)
	}
	if said := b.textOf("main"); !strings.Contains(said, endtext.Messages["revoked"]) {
		t.Errorf("the sign-in page after the revocation lacks %q:\n%s", endtext.Messages["revoked"], said)
	}
}
