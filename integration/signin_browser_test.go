package integration

import (
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sessionauth/caddy-sessionauth/internal/redisserver"
)

// appPage shows who the gateway says is signed in, from the identity
// headers the app receives.
var appPage = template.Must(template.New("app").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>The app</title>
<style>body{margin:0;font:16px/1.5 sans-serif}header{background:#2e7d32;color:#fff;padding:.5rem 1rem}dl{padding:0 1rem}</style></head>
<body><header><h1>Hello, {{.User}}</h1></header><dl>
<dt>User</dt><dd id="user">{{.User}}</dd><dt>Email</dt><dd id="email">{{.Email}}</dd><dt>Method</dt><dd id="method">{{.Method}}</dd>
</dl></body></html>`))

// identityApp serves appPage on a free port and answers its address.
func identityApp(t *testing.T) string {
	return serveLocal(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = appPage.Execute(w, map[string]string{"User": r.Header.Get("X-Auth-User"), "Email": r.Header.Get("X-Auth-Email"), "Method": r.Header.Get("X-Auth-Method")})
	}))
}

// browserOIDCSite starts the test provider on localhost, another site than
// the gateway on 127.0.0.1 as a real provider is (the browser comes back to
// the callback from another site), and a gateway on 127.0.0.1 with that
// provider as "corp" (providerExtra in its block) and the accounts form, in
// front of the identity app. edit, when not nil, changes the Caddyfile.
func browserOIDCSite(t *testing.T, store, providerExtra string, edit func(string) string) (*gateway, *testOP) {
	t.Helper()
	port := redisserver.FreePort(t)
	o := startOPOn(t, "localhost", fmt.Sprintf("http://127.0.0.1:%d/.auth/callback/corp", port))
	text := oidcSite(port, store, providerBlock("corp", o.issuer, providerExtra)+accountsBlock(t))
	if edit != nil {
		text = edit(text)
	}
	g := loadCaddy(t, behind(text, identityApp(t)), nil)
	g.port, g.base = port, fmt.Sprintf("http://127.0.0.1:%d", port)
	return g, o
}

// The sign-in page in real Chromium: the app sends the browser to it, it
// shows the provider's button where the page says, a real click on it
// leads to the provider's login form, and after it the browser is back on
// the app, signed in as alice by OIDC.
func TestSignInInABrowser(t *testing.T) {
	chrome := chromiumPath(t)
	g, o := browserOIDCSite(t, "store memory", "", nil)
	host := strings.TrimPrefix(g.base, "http://")

	b := openTab(t, chrome, 1280, 800, 60*time.Second, g.base+"/app")
	b.until("the sign-in page", `location.pathname === "/.auth/sign-in" && !!document.querySelector("a.button")`)
	if href := eval[string](b, `location.href`); href != g.base+"/.auth/sign-in?next=%2Fapp" {
		t.Fatalf("the app sent the browser to %s", href)
	}
	if title := eval[string](b, `document.title`); title != "Sign in to "+host {
		t.Errorf("the sign-in page's title: %q", title)
	}
	page := b.textOf(`main`)
	for _, want := range []string{"Sign in to " + host, "Sign in with Corp", "or with your user name", "User name", "Password"} {
		if !strings.Contains(page, want) {
			t.Errorf("the sign-in page lacks %q:\n%s", want, page)
		}
	}
	s := b.screenshot("sign-in")
	t.Logf("screenshot sign-in page %s: %d colours; %s", s.size, s.colours, boxShows(b, s, "a.button", true))
	t.Logf("screenshot sign-in page %s: %s", s.size, boxShows(b, s, `button[type="submit"]`, true))

	b.click("a.button")
	op := strings.TrimSuffix(strings.TrimPrefix(o.issuer, "http://"), "/")
	b.atProvider(fmt.Sprintf(`location.host === %q`, op), "alice")
	b.until("the app, signed in", fmt.Sprintf(`location.href === %q && !!document.querySelector("#user")`, g.base+"/app"))
	user, email, method := b.textOf("#user"), b.textOf("#email"), b.textOf("#method")
	if user != "alice@example.com" || email != "alice@example.com" || method != "oidc:corp" {
		t.Fatalf("the app shows user %q, email %q, method %q", user, email, method)
	}
	s = b.screenshot("app-oidc")
	t.Logf("screenshot app page %s: %d colours; shows %s signed in by %s OK", s.size, s.colours, user, method)
}

// The accounts form in real Chromium: it fits a phone; a wrong password
// is a page in words; bob's password leads to the code page, where the
// code field shows; the code his authenticator app shows signs him in.
func TestAccountsSignInWithTOTPInABrowser(t *testing.T) {
	chrome := chromiumPath(t)
	g := loadCaddy(t, behind(accountsSite(t, "store memory", ""), identityApp(t)), nil)

	b := openTab(t, chrome, 1280, 800, 60*time.Second, g.base+"/app")
	b.until("the sign-in page", `location.pathname === "/.auth/sign-in" && !!document.querySelector("#password")`)

	// On a phone the form fits the screen: no scrolling sideways.
	b.do("turning into a phone", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateScale(3)))
	b.until("the phone layout", `window.innerWidth === 390`)
	width := eval[[]float64](b, `[document.scrollingElement.scrollWidth, window.innerWidth]`)
	if width[0] > width[1] {
		t.Errorf("on a phone the sign-in page scrolls sideways: %.0f wide in %.0f", width[0], width[1])
	}
	form := b.boxOf("form")
	if form.X < 0 || form.X+form.W > width[1] {
		t.Errorf("on a phone the form is at %v, not within the screen's %.0f", form, width[1])
	}
	s := b.screenshot("sign-in-phone")
	t.Logf("screenshot sign-in page %s (phone, %.0fx): %d colours; scrollWidth %.0f <= innerWidth %.0f; form at %v fits; %s",
		s.size, s.scale, s.colours, width[0], width[1], form, boxShows(b, s, `button[type="submit"]`, true))
	b.do("back to a desktop", chromedp.EmulateViewport(1280, 800))
	b.until("the desktop layout", `window.innerWidth === 1280`)

	// A wrong password: the page says so in words.
	b.typeInto("#username", "bob")
	b.typeInto("#password", "not-demo")
	b.click(`button[type="submit"]`)
	b.until("the page after a wrong password", `!!document.querySelector(".error")`)
	if kind := eval[string](b, `document.contentType`); kind != "text/html" {
		t.Errorf("a wrong password is answered with %s", kind)
	}
	if said := b.textOf(".error"); said != "Wrong user name or password." {
		t.Errorf("a wrong password: the page says %q", said)
	}
	s = b.screenshot("sign-in-wrong-password")
	t.Logf("screenshot wrong password page %s: %d colours; %s", s.size, s.colours, boxShows(b, s, ".error", true))

	// The password, then the code.
	b.typeInto("#username", "bob")
	b.typeInto("#password", "demo")
	b.click(`button[type="submit"]`)
	b.until("the code page", `!!document.querySelector("#code")`)
	if page := b.textOf("main"); !strings.Contains(page, "Signing in as bob.") || !strings.Contains(page, "Code from your authenticator app") {
		t.Errorf("the code page:\n%s", page)
	}
	field, view := b.boxOf("#code"), eval[[]float64](b, `[window.innerWidth, window.innerHeight]`)
	if field.X < 0 || field.Y < 0 || field.X+field.W > view[0] || field.Y+field.H > view[1] || field.W < 100 {
		t.Errorf("the code field at %v is not in the %.0fx%.0f window", field, view[0], view[1])
	}
	s = b.screenshot("sign-in-code")
	t.Logf("screenshot code page %s: %d colours; code field at %v in the window; %s", s.size, s.colours, field, boxShows(b, s, "#code", false))

	b.typeInto("#code", codeFor(t, bobTOTP, time.Now()))
	b.click(`button[type="submit"]`)
	b.until("the app, signed in", fmt.Sprintf(`location.href === %q && !!document.querySelector("#user")`, g.base+"/app"))
	if user, method := b.textOf("#user"), b.textOf("#method"); user != "bob" || method != "password+totp" {
		t.Fatalf("the app shows user %q, method %q", user, method)
	}
	s = b.screenshot("app-totp")
	t.Logf("screenshot app page %s: %d colours; shows bob signed in by password+totp OK", s.size, s.colours)
}

// boxShows checks that a screenshot shows an element where the DOM puts
// it, in the colours its style gives it: its border (or focus ring) on
// its left and right edges, its background just inside them, some of its
// text colour inside (withText), and none of its edge's colour just above
// it. It answers a line for the log.
func boxShows(b *tab, s *shot, selector string, withText bool) string {
	b.t.Helper()
	r := b.boxOf(selector)
	// A focused field's edge is its focus ring, drawn over the border.
	style := eval[[]string](b, fmt.Sprintf(`(() => {
		const e = document.querySelector(%q), c = getComputedStyle(e)
		const ring = document.activeElement === e && c.outlineStyle !== "none" && parseFloat(c.outlineWidth) > 0
		return [ring ? c.outlineColor : c.borderLeftColor, ring ? "focus ring" : "border", c.backgroundColor, c.color, e.innerText || e.getAttribute("name")]
	})()`, selector))
	border, edge, background, ink, label := parseRGB(b.t, style[0]), style[1], parseRGB(b.t, style[2]), parseRGB(b.t, style[3]), style[4]
	mid := r.Y + r.H/2
	var failed []string
	for _, x := range []float64{r.X + 0.5, r.X + r.W - 0.5} {
		if c := s.nearest(x, mid, 1, border); !c.near(border, 24) {
			failed = append(failed, fmt.Sprintf("at x=%.0f %v, not its %s %v", x, c, edge, border))
		}
	}
	for _, x := range []float64{r.X + 6, r.X + r.W - 6} {
		if c := s.at(x, mid); !c.near(background, 8) {
			failed = append(failed, fmt.Sprintf("at x=%.0f %v, not its background %v", x, c, background))
		}
	}
	inkPixels := s.count(box{r.X + 3, r.Y + 3, r.W - 6, r.H - 6}, ink)
	if withText && inkPixels < 20 {
		failed = append(failed, fmt.Sprintf("%d pixels of its text colour %v", inkPixels, ink))
	}
	if c := s.nearest(r.X+r.W/2, r.Y-6, 2, border); c.near(border, 24) && !border.near(background, 8) {
		failed = append(failed, fmt.Sprintf("its %s colour %v above it", edge, border))
	}
	line := fmt.Sprintf("%q at %v: %s %v on both edges, background %v inside", label, r, edge, border, background)
	if withText {
		line += fmt.Sprintf(", %d pixels of its text %v", inkPixels, ink)
	}
	if len(failed) > 0 {
		b.t.Errorf("the screenshot does not show %s where the page says: %s", line, strings.Join(failed, "; "))
		return line + " FAILED"
	}
	return line + " OK"
}

// A refused OIDC sign-in is a page in words at the callback's address,
// with the accounts form under it: that form signs in from there too.
func TestSignInAfterARefusalInABrowser(t *testing.T) {
	chrome := chromiumPath(t)
	g, _ := browserOIDCSite(t, "store memory", "allow_domains example.com", nil)

	b := openTab(t, chrome, 1280, 800, 60*time.Second, g.base+"/app")
	b.until("the sign-in page", `location.pathname === "/.auth/sign-in" && !!document.querySelector("a.button")`)
	b.click("a.button")
	b.atProvider("true", "eve") // eve@other.example: not an allowed domain
	b.until("the refusal", `location.pathname === "/.auth/callback/corp" && !!document.querySelector(".error")`)
	if kind := eval[string](b, `document.contentType`); kind != "text/html" {
		t.Errorf("the refusal is answered with %s", kind)
	}
	if said := b.textOf(".error"); said != "This account is not allowed here." {
		t.Errorf("the refusal says %q", said)
	}
	s := b.screenshot("sign-in-refused")
	t.Logf("screenshot refused sign-in page %s: %d colours; %s", s.size, s.colours, boxShows(b, s, ".error", true))

	b.typeInto("#username", "alice")
	b.typeInto("#password", "demo")
	b.click(`button[type="submit"]`)
	b.until("the app, signed in", fmt.Sprintf(`location.href === %q && !!document.querySelector("#user")`, g.base+"/"))
	if user, method := b.textOf("#user"), b.textOf("#method"); user != "alice" || method != "password" {
		t.Fatalf("the app shows user %q, method %q", user, method)
	}
}

// With cookie same_site strict, the browser keeps the new session cookie
// from every request of a navigation another site started, the
// provider's redirect to the callback and the callback's own redirect
// included: the OIDC sign-in must still land on the app signed in.
func TestSignInWithStrictCookieInABrowser(t *testing.T) {
	chrome := chromiumPath(t)
	g, _ := browserOIDCSite(t, "store memory\ncookie {\n\tsame_site strict\n}", "", nil)

	b := openTab(t, chrome, 1280, 800, 60*time.Second, g.base+"/app?x=1")
	b.until("the sign-in page", `location.pathname === "/.auth/sign-in" && !!document.querySelector("a.button")`)
	b.click("a.button")
	b.atProvider("true", "alice")
	b.until("the app, signed in", fmt.Sprintf(`location.href === %q && !!document.querySelector("#user")`, g.base+"/app?x=1"))
	if user, method := b.textOf("#user"), b.textOf("#method"); user != "alice@example.com" || method != "oidc:corp" {
		t.Fatalf("the app shows user %q, method %q", user, method)
	}
}

// atProvider signs in on the test provider's login form as user, once
// the page is the form and where (a JavaScript condition) holds.
func (b *tab) atProvider(where, user string) {
	b.t.Helper()
	b.until("the provider's login form", where+` && !!document.querySelector("#password")`)
	b.typeInto("#username", user)
	b.typeInto("#password", "verysecure")
	b.click(`button[type="submit"]`)
}
