package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
)

// People managing their own sign-in (SPEC 15) in real Chromium, with a
// virtual authenticator, on http://localhost (WebAuthn refuses IP
// addresses): the invitation page, the account page and its forms, the
// passkeys page, a passkey as second factor and for a step-up.

// passkeySite is a gateway on localhost with stored accounts beside
// alice and bob (accountsBlock), passkeys that verify the person, and
// session_require max_age (stepUpMaxAge) on /admin, in front of the
// identity app; base is its address as the browser uses it.
func passkeySite(t *testing.T) (g *gateway, base string) {
	t.Helper()
	block := strings.Replace(accountsBlock(t), "accounts {\n", "accounts {\n\t\tstored\n", 1)
	text := site("store memory\nsign_in {\n" + block + "\tpasskeys {\n\t\tuser_verification required\n\t}\n}")
	text = strings.Replace(text, "http://127.0.0.1:{PORT} {", "http://localhost:{PORT} {", 1)
	text = strings.Replace(text, "\treverse_proxy {UPSTREAM}", "\tsession_require /admin* max_age "+stepUpMaxAge.String()+"\n\treverse_proxy {UPSTREAM}", 1)
	g = loadCaddy(t, behind(text, identityApp(t)), nil)
	return g, fmt.Sprintf("http://localhost:%d", g.port)
}

// invite creates a stored account on the admin API and answers its
// invitation's address on base.
func invite(t *testing.T, g *gateway, base, body string) string {
	t.Helper()
	code, out := g.adminDo("POST", "/session-auth/accounts", body)
	var inv struct {
		Invite string `json:"invite"`
	}
	if err := json.Unmarshal([]byte(out), &inv); code != 201 || err != nil || !strings.HasPrefix(inv.Invite, "/.auth/invite?token=") {
		t.Fatalf("creating an account: %d %s", code, out)
	}
	return base + inv.Invite
}

// withAuthenticator gives the tab a virtual platform authenticator that
// keeps resident keys and verifies the user (the DevTools WebAuthn domain).
func (b *tab) withAuthenticator() {
	b.t.Helper()
	b.do("adding a virtual authenticator", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		if _, err := cdp.Call(ctx, tg, webauthn.Enable, webauthn.EnableParams{}); err != nil {
			return err
		}
		_, err := cdp.Call(ctx, tg, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{Options: &webauthn.VirtualAuthenticatorOptions{
			Protocol: webauthn.AuthenticatorProtocolCtap2, Ctap2version: webauthn.Ctap2versionCtap21, Transport: webauthn.AuthenticatorTransportInternal,
			HasResidentKey: true, HasUserVerification: true, IsUserVerified: true, AutomaticPresenceSimulation: true,
		}})
		return err
	}))
}

// forgetCookies clears the browser's cookies: the next page is a new visitor's.
func (b *tab) forgetCookies() {
	b.t.Helper()
	b.do("forgetting the cookies", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, network.ClearBrowserCookies, cdp.Empty{})
		return err
	}))
}

// shown is a JavaScript condition: selector is on the page and not hidden.
func shown(selector string) string {
	return fmt.Sprintf(`!!document.querySelector(%q) && !document.querySelector(%q).hidden`, selector, selector)
}

// onDesktopAndPhone screenshots the page at 1280x800 as name and at
// 390x844 (a phone, 3x) as name-phone; on the phone the page must not
// scroll sideways. check looks at each screenshot and answers a line for
// the log.
func (b *tab) onDesktopAndPhone(name string, check func(s *shot) string) {
	b.t.Helper()
	s := b.screenshot(name)
	b.t.Logf("screenshot %s %s: %d colours; %s", name, s.size, s.colours, check(s))
	b.do("turning into a phone", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateScale(3)))
	b.until("the phone layout", `window.innerWidth === 390`)
	width := eval[[]float64](b, `[document.scrollingElement.scrollWidth, window.innerWidth]`)
	if width[0] > width[1] {
		b.t.Errorf("on a phone the %s scrolls sideways: %.0f wide in %.0f", name, width[0], width[1])
	}
	s = b.screenshot(name + "-phone")
	b.t.Logf("screenshot %s-phone %s (%.0fx): %d colours; scrollWidth %.0f <= %.0f; %s", name, s.size, s.scale, s.colours, width[0], width[1], check(s))
	b.do("back to a desktop", chromedp.EmulateViewport(1280, 800))
	b.until("the desktop layout", `window.innerWidth === 1280`)
}

// qrShows checks that the screenshot draws the page's QR code: the
// light quiet zone at its corners, the dark centre and light ring of its
// top-left finder pattern where the SVG's viewBox puts them, and about as
// many dark as light modules inside.
func qrShows(b *tab, s *shot) string {
	b.t.Helper()
	r := b.boxOf(".qr svg")
	side := eval[float64](b, `document.querySelector(".qr svg").viewBox.baseVal.width`)
	m := r.W / side // one module, in CSS pixels
	var failed []string
	white, black := rgb{255, 255, 255}, rgb{0, 0, 0}
	for _, p := range [][2]float64{{1, 1}, {side - 1, 1}, {1, side - 1}, {side - 1, side - 1}} {
		if c := s.at(r.X+p[0]*m, r.Y+p[1]*m); !c.near(white, 16) {
			failed = append(failed, fmt.Sprintf("quiet zone at module %v is %v", p, c))
		}
	}
	if c := s.at(r.X+7.5*m, r.Y+7.5*m); !c.near(black, 16) {
		failed = append(failed, fmt.Sprintf("the finder's centre is %v", c))
	}
	if c := s.at(r.X+5.5*m, r.Y+7.5*m); !c.near(white, 16) {
		failed = append(failed, fmt.Sprintf("the finder's light ring is %v", c))
	}
	inner := box{r.X + 4*m, r.Y + 4*m, r.W - 8*m, r.H - 8*m}
	dark, light := s.count(inner, black), s.count(inner, white)
	if dark < light/3 || light < dark/3 {
		failed = append(failed, fmt.Sprintf("%d dark and %d light pixels inside", dark, light))
	}
	line := fmt.Sprintf("QR code at %v, %.0f modules of %.1fpx: quiet zone, finder pattern, %d dark and %d light pixels", r, side, m, dark, light)
	if len(failed) > 0 {
		b.t.Errorf("the screenshot does not draw the QR code: %s", strings.Join(failed, "; "))
		return line + " FAILED"
	}
	return line + " OK"
}

// An invitation in real Chromium, then the account page: the invitation
// page (with "Add a passkey" shown by the script) on a desktop and a
// phone; dana chooses a password and is signed in; adds a passkey on the
// passkeys page; changes her password, adds an authenticator app (the
// code computed from the otpauth URI the page shows, its QR code drawn)
// and makes recovery codes on the account page; forgets her cookies and
// signs in with "Sign in with a passkey" alone; removes the passkey, and
// it no longer signs in.
func TestInvitationAndAccountPagesInABrowser(t *testing.T) {
	chrome := chromiumPath(t)
	g, base := passkeySite(t)
	link := invite(t, g, base, `{"user_id":"dana","email":"dana@example.com","name":"Dana Example"}`)

	b := openTab(t, chrome, 1280, 800, 150*time.Second, link)
	b.withAuthenticator()
	b.until("the invitation page, its passkey button shown", `!!document.querySelector("#confirm") && `+shown(`button[data-passkey="invite"]`))
	if page := b.textOf("main"); !strings.Contains(page, "Set up your account on localhost") || !strings.Contains(page, "or, without a password") {
		t.Errorf("the invitation page:\n%s", page)
	}
	b.onDesktopAndPhone("invitation-page", func(s *shot) string {
		return boxShows(b, s, `button[data-passkey="invite"]`, true) + "; " + boxShows(b, s, `button[type="submit"]`, true)
	})

	b.typeInto("#password", "dana's first password")
	b.typeInto("#confirm", "dana's first password")
	b.click(`button[type="submit"]`)
	b.until("the app, signed in by the invitation's password", `location.pathname === "/" && !!document.querySelector("#method")`)
	if user, method := b.textOf("#user"), b.textOf("#method"); user != "dana" || method != "password" {
		t.Fatalf("after the invitation the app shows user %q, method %q", user, method)
	}

	// "Add a passkey" on the passkeys page.
	b.do("opening the passkeys page", chromedp.Navigate(base+"/.auth/account/passkeys"))
	b.until("the passkeys page's Add button", shown(`button[data-passkey="register"]`))
	b.click(`button[data-passkey="register"]`)
	b.until("the passkey listed", `!!document.querySelector('section[aria-label^="Passkey "]')`)
	if page := b.textOf("main"); !strings.Contains(page, "Last used never") || !strings.Contains(page, "Signed in as Dana Example") {
		t.Errorf("the passkeys page after adding:\n%s", page)
	}
	b.onDesktopAndPhone("passkeys-page", func(s *shot) string {
		return boxShows(b, s, `button[data-passkey="register"]`, true) + "; " + boxShows(b, s, `form[action$="/remove"] button`, true)
	})

	// The account page: the password changed.
	b.do("opening the account page", chromedp.Navigate(base+"/.auth/account"))
	b.until("the account page", `!!document.querySelector('form[action$="/account/password"]')`)
	b.onDesktopAndPhone("account-page", func(s *shot) string {
		return boxShows(b, s, `form[action$="/account/password"] button`, true) + "; " + boxShows(b, s, `form[action$="/account/totp"] button`, true)
	})
	b.typeInto(`input[name="current"]`, "dana's first password")
	b.typeInto(`input[name="new"]`, "dana's second password")
	b.click(`form[action$="/account/password"] button`)
	b.until("the notice of the new password", `!!document.querySelector(".notice")`)
	if said := b.textOf(".notice"); !strings.Contains(said, "Your password was changed") {
		t.Errorf("after changing the password the page says %q", said)
	}

	// An authenticator app, its code computed from the URI the page shows.
	b.click(`form[action$="/account/totp"] button`)
	b.until("the authenticator app page", `!!document.querySelector(".qr svg") && !!document.querySelector("#code")`)
	uri, err := url.Parse(eval[string](b, `document.querySelector("#uri").value`))
	if err != nil || uri.Scheme != "otpauth" || uri.Host != "totp" || uri.Query().Get("secret") == "" {
		t.Fatalf("the otpauth URI shown: %v %v", uri, err)
	}
	if key := eval[string](b, `document.querySelector("#secret").value`); key != uri.Query().Get("secret") {
		t.Errorf("the key shown %q is not the URI's %q", key, uri.Query().Get("secret"))
	}
	b.onDesktopAndPhone("totp-page", func(s *shot) string {
		return qrShows(b, s) + "; " + boxShows(b, s, `form[action$="/totp/confirm"] button`, true)
	})
	b.typeInto("#code", codeFor(t, uri.Query().Get("secret"), time.Now()))
	b.click(`form[action$="/totp/confirm"] button`)
	b.until("the notice of the authenticator app", `!!document.querySelector(".notice")`)
	if said := b.textOf(".notice"); !strings.Contains(said, "Your authenticator app was added") {
		t.Errorf("after adding the authenticator app the page says %q", said)
	}

	// Recovery codes, shown once.
	b.click(`form[action$="/account/recovery-codes"] button`)
	b.until("the recovery codes", `document.querySelectorAll("ul.codes li").length > 0`)
	codes := eval[[]string](b, `[...document.querySelectorAll("ul.codes li")].map(e => e.innerText)`)
	shape := regexp.MustCompile(`^[a-z0-9]{5}-[a-z0-9]{5}$`)
	if len(codes) != 10 {
		t.Errorf("%d recovery codes: %v", len(codes), codes)
	}
	for _, c := range codes {
		if !shape.MatchString(c) {
			t.Errorf("recovery code %q is not two groups of five", c)
		}
	}
	b.onDesktopAndPhone("recovery-codes-page", func(s *shot) string {
		first := b.boxOf("ul.codes li code")
		ink := parseRGB(t, eval[string](b, `getComputedStyle(document.querySelector("ul.codes li code")).color`))
		n := s.count(first, ink)
		if n < 20 {
			t.Errorf("the screenshot shows %d pixels of the first code's text at %v", n, first)
		}
		return fmt.Sprintf("%d codes; the first, %q at %v: %d pixels of its text %v", len(codes), codes[0], first, n, ink)
	})

	// A new visitor: the passkey alone signs dana in.
	b.forgetCookies()
	b.do("opening the app", chromedp.Navigate(base+"/app"))
	b.until("the sign-in page's passkey button", `location.pathname === "/.auth/sign-in" && `+shown(`button[data-passkey="login"]`))
	b.click(`button[data-passkey="login"]`)
	b.until("the app, signed in by passkey", `location.pathname === "/app" && !!document.querySelector("#method")`)
	if user, method := b.textOf("#user"), b.textOf("#method"); user != "dana" || method != "passkey" {
		t.Fatalf("after the passkey sign-in the app shows user %q, method %q", user, method)
	}

	// Removed, the passkey no longer signs in (the authenticator still
	// holds it).
	b.do("opening the passkeys page", chromedp.Navigate(base+"/.auth/account/passkeys"))
	b.until("the passkey's Remove button", `!!document.querySelector('form[action$="/remove"] button')`)
	b.click(`form[action$="/remove"] button`)
	b.until("no passkeys", `!!document.querySelector(".empty")`)
	b.forgetCookies()
	b.do("opening the app", chromedp.Navigate(base+"/app"))
	b.until("the sign-in page's passkey button", `location.pathname === "/.auth/sign-in" && `+shown(`button[data-passkey="login"]`))
	b.click(`button[data-passkey="login"]`)
	b.until("the passkey refused", shown(`[data-passkey-error]`)+` && document.querySelector("[data-passkey-error]").innerText !== ""`)
	if said := b.textOf("[data-passkey-error]"); !strings.Contains(said, "That passkey was not accepted") {
		t.Errorf("a removed passkey: the page says %q", said)
	}
	if path := eval[string](b, `location.pathname`); path != "/.auth/sign-in" {
		t.Errorf("a removed passkey led to %s", path)
	}
	s := b.screenshot("sign-in-removed-passkey")
	t.Logf("screenshot sign-in page, removed passkey %s: %d colours; %s", s.size, s.colours, boxShows(b, s, "[data-passkey-error]", true))
}

// An invitation set up with a passkey alone in real Chromium: "Add a
// passkey" on the invitation page signs erin in by passkey, with no
// password; the invitation is spent; the passkey signs in again after
// the cookies are gone.
func TestInvitationPasskeyOnlyInABrowser(t *testing.T) {
	chrome := chromiumPath(t)
	g, base := passkeySite(t)
	link := invite(t, g, base, `{"user_id":"erin","name":"Erin Example"}`)

	b := openTab(t, chrome, 1280, 800, 90*time.Second, link)
	b.withAuthenticator()
	b.until("the invitation page's passkey button", shown(`button[data-passkey="invite"]`))
	b.click(`button[data-passkey="invite"]`)
	b.until("the app, signed in by the invitation's passkey", `location.pathname === "/" && !!document.querySelector("#method")`)
	if user, method := b.textOf("#user"), b.textOf("#method"); user != "erin" || method != "passkey" {
		t.Fatalf("after the invitation's passkey the app shows user %q, method %q", user, method)
	}
	if code, out := g.adminDo("GET", "/session-auth/accounts/erin", ""); code != 200 || !strings.Contains(out, `"password":false`) || !strings.Contains(out, `"passkeys":1`) {
		t.Errorf("erin's account: %d %s", code, out)
	}
	b.do("opening the account page", chromedp.Navigate(base+"/.auth/account"))
	b.until("the account page of a passkey's session", `!!document.querySelector('form[action$="/account/recovery-codes"]')`)
	if page := b.textOf("main"); !strings.Contains(page, "Signed in as Erin Example (erin)") {
		t.Errorf("the account page:\n%s", page)
	}
	b.do("opening the invitation again", chromedp.Navigate(link))
	b.until("the spent invitation", `document.body.innerText.includes("expired or was used")`)

	b.forgetCookies()
	b.do("opening the app", chromedp.Navigate(base+"/app"))
	b.until("the sign-in page's passkey button", `location.pathname === "/.auth/sign-in" && `+shown(`button[data-passkey="login"]`))
	b.click(`button[data-passkey="login"]`)
	b.until("the app, signed in by passkey", `location.pathname === "/app" && !!document.querySelector("#method")`)
	if user, method := b.textOf("#user"), b.textOf("#method"); user != "erin" || method != "passkey" {
		t.Fatalf("the app shows user %q, method %q", user, method)
	}
}

// A passkey as second factor and for a step-up in real Chromium: alice
// (an operator's account) adds a passkey; her password then leads to the
// second step, where "Use a passkey" signs her in (password+passkey);
// past /admin's max_age, "Confirm with a passkey" on the step-up page
// takes her to /admin with the same session and a step_up event.
func TestPasskeySecondFactorAndStepUpInABrowser(t *testing.T) {
	chrome := chromiumPath(t)
	g, base := passkeySite(t)

	b := openTab(t, chrome, 1280, 800, 120*time.Second, base+"/app")
	b.withAuthenticator()
	signIn := func() {
		t.Helper()
		b.until("the sign-in page", `location.pathname === "/.auth/sign-in" && !!document.querySelector("#password")`)
		b.typeInto("#username", "alice")
		b.typeInto("#password", "demo")
		b.click(`button[type="submit"]`)
	}
	signIn()
	b.until("the app, signed in by password", `location.pathname === "/app" && !!document.querySelector("#method")`)
	b.do("opening the passkeys page", chromedp.Navigate(base+"/.auth/account/passkeys"))
	b.until("the passkeys page's Add button", shown(`button[data-passkey="register"]`))
	b.click(`button[data-passkey="register"]`)
	b.until("the passkey listed", `!!document.querySelector('section[aria-label^="Passkey "]')`)

	b.forgetCookies()
	b.do("opening the app", chromedp.Navigate(base+"/app"))
	signIn()
	b.until("the second step's passkey button", `!!document.querySelector("#code") && `+shown(`button[data-passkey="login"][data-pending]`))
	if said := b.textOf(`button[data-passkey="login"]`); said != "Use a passkey" {
		t.Errorf("the second step's button says %q", said)
	}
	s := b.screenshot("second-step-passkey")
	t.Logf("screenshot second step %s: %d colours; %s", s.size, s.colours, boxShows(b, s, `button[data-passkey="login"]`, true))
	b.click(`button[data-passkey="login"]`)
	b.until("the app, signed in by password and passkey", `location.pathname === "/app" && !!document.querySelector("#method")`)
	if user, method := b.textOf("#user"), b.textOf("#method"); user != "alice" || method != "password+passkey" {
		t.Fatalf("after the second step the app shows user %q, method %q", user, method)
	}
	// Two: the first sign-in's (its cookie forgotten, not signed out) and this one.
	before := activeSessions(t, g, "alice")
	if len(before) != 2 {
		t.Fatalf("active sessions after the sign-in: %v", before)
	}

	time.Sleep(stepUpMaxAge + 100*time.Millisecond) // past /admin's max_age
	b.do("opening /admin", chromedp.Navigate(base+"/admin"))
	b.until("the step-up page's passkey button", `document.title.startsWith("Confirm it's you") && `+shown(`button[data-passkey="login"][data-step-up]`))
	if said := b.textOf(`button[data-passkey="login"]`); said != "Confirm with a passkey" {
		t.Errorf("the step-up page's button says %q", said)
	}
	b.click(`button[data-passkey="login"]`)
	b.until("/admin, stepped up", `location.pathname === "/admin" && !!document.querySelector("#user")`)
	if user := b.textOf("#user"); user != "alice" {
		t.Fatalf("after the step-up /admin shows user %q", user)
	}
	if after := activeSessions(t, g, "alice"); !sameIDs(after, before) {
		t.Fatalf("active sessions after the step-up (the same session, no new one): %v, before %v", after, before)
	}
	if _, events := g.adminDo("GET", "/session-auth/users/alice/events", ""); !strings.Contains(events, `"type":"step_up"`) {
		t.Fatalf("no step_up event: %s", events)
	}
}

// sameIDs reports whether a and b hold the same ids, in any order.
func sameIDs(a, b []string) bool {
	return len(a) == len(b) && !slices.ContainsFunc(a, func(id string) bool { return !slices.Contains(b, id) })
}

// The invitation page without script in real Chromium: the passkey
// button and its hint stay out of sight (the layout's [hidden] wins over
// the button style), and the password form alone sets the account up.
func TestInvitationWithoutScriptInABrowser(t *testing.T) {
	chrome := chromiumPath(t)
	g, base := passkeySite(t)
	link := invite(t, g, base, `{"user_id":"finn"}`)

	b := openTab(t, chrome, 1280, 800, 60*time.Second, "about:blank")
	b.do("turning script off", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true})
		return err
	}))
	b.do("opening the invitation", chromedp.Navigate(link))
	b.until("the invitation page", `!!document.querySelector("#confirm")`)
	if shownNow := eval[[]string](b, `[...document.querySelectorAll("[data-passkey], [data-passkey-hint], [data-passkey-error]")].map(e => getComputedStyle(e).display)`); len(shownNow) != 3 || slices.ContainsFunc(shownNow, func(d string) bool { return d != "none" }) {
		t.Errorf("without script the passkey parts display as %v", shownNow)
	}
	s := b.screenshot("invitation-page-no-script")
	t.Logf("screenshot invitation page without script %s: %d colours; %s", s.size, s.colours, boxShows(b, s, `button[type="submit"]`, true))
	b.typeInto("#password", "finn's password")
	b.typeInto("#confirm", "finn's password")
	b.click(`button[type="submit"]`)
	b.until("the app, signed in by the invitation's password", `location.pathname === "/" && !!document.querySelector("#method")`)
	if user, method := b.textOf("#user"), b.textOf("#method"); user != "finn" || method != "password" {
		t.Fatalf("the app shows user %q, method %q", user, method)
	}
}
