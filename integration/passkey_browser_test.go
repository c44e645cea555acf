package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Passkeys in real Chromium with a virtual authenticator (the DevTools
// WebAuthn domain: a platform authenticator that keeps resident keys and
// verifies the user), on http://localhost (WebAuthn refuses IP
// addresses): alice signs in with her password, adds a passkey on the
// passkeys page with its button (passkeys.js), forgets her cookies, and
// signs in again with "Sign in with a passkey" alone: the app sees her,
// by passkey, and /.auth/me says who she is.
func TestPasskeyInABrowser(t *testing.T) {
	chrome := chromiumPath(t)
	text := accountsSite(t, "store memory", "")
	text = strings.Replace(text, "http://127.0.0.1:{PORT} {", "http://localhost:{PORT} {", 1)
	text = strings.Replace(text, "sign_in {\n", "sign_in {\n\tpasskeys {\n\t\tuser_verification required\n\t}\n", 1)
	g := loadCaddy(t, behind(text, identityApp(t)), nil)
	base := fmt.Sprintf("http://localhost:%d", g.port)

	b := openTab(t, chrome, 1280, 800, 90*time.Second, base+"/app")
	b.withAuthenticator()

	b.until("the sign-in page", `location.pathname === "/.auth/sign-in" && !!document.querySelector("#password")`)
	b.until("the passkey button, shown by the script", `!!document.querySelector('button[data-passkey="login"]') && !document.querySelector('button[data-passkey="login"]').hidden`)
	b.typeInto("#username", "alice")
	b.typeInto("#password", "demo")
	b.click(`button[type="submit"]`)
	b.until("the app, signed in by password", `location.pathname === "/app" && !!document.querySelector("#user")`)

	b.do("opening the passkeys page", chromedp.Navigate(base+"/.auth/account/passkeys"))
	b.until("the passkeys page's Add button", `!!document.querySelector('button[data-passkey="register"]') && !document.querySelector('button[data-passkey="register"]').hidden`)
	if page := b.textOf("main"); !strings.Contains(page, "No passkeys yet.") {
		t.Fatalf("the passkeys page:\n%s", page)
	}
	b.click(`button[data-passkey="register"]`)
	b.until("the passkey listed", `!!document.querySelector('section[aria-label^="Passkey "]')`)
	if page := b.textOf("main"); !strings.Contains(page, "Last used never") {
		t.Errorf("the passkeys page after adding:\n%s", page)
	}
	s := b.screenshot("passkeys-page")
	t.Logf("screenshot passkeys page %s: %d colours; %s", s.size, s.colours, boxShows(b, s, `button[data-passkey="register"]`, true))

	b.forgetCookies()
	b.do("opening the app", chromedp.Navigate(base+"/app"))
	b.until("the sign-in page's passkey button", `location.pathname === "/.auth/sign-in" && !!document.querySelector('button[data-passkey="login"]') && !document.querySelector('button[data-passkey="login"]').hidden`)
	s = b.screenshot("sign-in-passkey")
	t.Logf("screenshot sign-in page %s: %d colours; %s", s.size, s.colours, boxShows(b, s, `button[data-passkey="login"]`, true))
	b.click(`button[data-passkey="login"]`)
	b.until("the app, signed in by passkey", `location.pathname === "/app" && !!document.querySelector("#method")`)
	if user, method := b.textOf("#user"), b.textOf("#method"); user != "alice" || method != "passkey" {
		t.Fatalf("the app shows user %q, method %q", user, method)
	}
	b.do("asking who is signed in", chromedp.Navigate(base+"/.auth/me"))
	b.until("/.auth/me", `document.body.innerText.includes('"id":"alice"')`)
}
