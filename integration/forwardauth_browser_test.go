package integration

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Forward auth in a real Chromium: the app behind Caddy's forward_auth
// (the README's site) sends the browser to the sign-in on the gateway's
// host; after the password it is back on the app's host, signed in as
// alice by the cookie the gateway set on the parent domain; a revocation
// at the gateway sends the next visit to the sign-in again.
//
// The hosts are app.example.com and auth.example.com, which Chromium is
// told to find on the loopback: Chromium refuses a Domain cookie on a host
// without a registrable domain (*.localhost, whose "localhost" is no
// known suffix), so *.localhost cannot share one cookie in it.
func TestForwardAuthInABrowser(t *testing.T) {
	chrome := chromiumPath(t)
	g := forwardAuthGateway(t, "example.com", readmeCaddyApp(t, "example.com"), identityApp(t))
	app := fmt.Sprintf("http://app.example.com:%d/reports?q=1", g.port)
	signInPage := `location.host === "auth.example.com:` + fmt.Sprint(g.port) + `" && location.pathname === "/.auth/sign-in" && !!document.querySelector("#password")`

	b := openTab(t, chrome, 1280, 800, 60*time.Second, app,
		chromedp.Flag("host-resolver-rules", "MAP *.example.com 127.0.0.1"))
	b.until("the gateway's sign-in page", signInPage)
	b.typeInto("#username", "alice")
	b.typeInto("#password", "demo")
	b.click(`button[type="submit"]`)
	b.until("the app, signed in", `location.href === `+jsString(app)+` && !!document.querySelector("#user")`)
	if user, email := b.textOf("#user"), b.textOf("#email"); user != "alice" || email != "alice@example.com" {
		t.Fatalf("the app received user %q, email %q", user, email)
	}

	if code, body := g.adminDo("DELETE", "/session-auth/users/alice/sessions", ""); code != http.StatusOK {
		t.Fatalf("revoking: %d %s", code, body)
	}
	b.do("reloading the app", chromedp.Navigate(app))
	b.until("the sign-in page after the revocation", signInPage)
}

// jsString quotes s for JavaScript.
func jsString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
