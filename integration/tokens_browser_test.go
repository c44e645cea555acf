package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// API tokens as a user makes them: signed in through the hand-off in real
// Chromium, a token created with the sessions page's form, its value read
// off the page that shows it once, used by a plain HTTP client, and
// revoked with its button on the page, after which the client is refused.
func TestAPITokensInABrowser(t *testing.T) {
	chrome := chromiumPath(t)
	up := newUpstream(t)
	g := loadCaddy(t, site("store memory\napi_tokens max_lifetime 30d"), up)
	user := "browser-tok-" + randomID()

	// The hand-off: the upstream's answer to /login names the user.
	b := openTab(t, chrome, 1100, 900, 30*time.Second, g.base+"/login?status=303&roles=deploy&user="+user)
	b.until("the app after the hand-off", `location.pathname === "/" && document.body.innerText.includes("upstream-body")`)
	b.do("opening the sessions page", chromedp.Navigate(g.base+"/.auth/sessions"))
	b.until("the sessions page", `!!document.querySelector('input[name="name"]')`)
	if page := b.textOf(`main`); !strings.Contains(page, "Access tokens") || !strings.Contains(page, "No access tokens.") {
		t.Fatalf("sessions page before any token:\n%s", page)
	}
	b.typeInto(`input[name="name"]`, "deploy script")
	b.typeInto(`input[name="lifetime"]`, "48h")
	created := time.Now().UTC()
	b.click(`button.create`)
	b.until("the new token's page", `!!document.querySelector("#token")`)
	shown := b.textOf(`main`)
	token := strings.TrimSpace(b.textOf(`#token`))
	if !strings.HasPrefix(token, "sat_") || len(token) < 30 {
		t.Fatalf("the page shows no token: %q\n%s", token, shown)
	}
	for _, want := range []string{`Your new access token “deploy script”`, "shown this once"} {
		if !strings.Contains(shown, want) {
			t.Errorf("the token's page lacks %q:\n%s", want, shown)
		}
	}

	// The token, from a plain HTTP client.
	api := newClient(t, g)
	bearer := []string{"Authorization", "Bearer " + token}
	res := api.do("GET", "/api/build", bearer...)
	if res.StatusCode != 200 || res.headers["X-Auth-User"] != user || res.headers["X-Auth-Method"] != "token" || res.headers["X-Auth-Roles"] != "deploy" {
		t.Fatalf("the bearer from the page: %d %v", res.StatusCode, res.headers)
	}
	tokenID := res.headers["X-Auth-Session"]

	// Back on the sessions page, the token is listed by name under
	// Access tokens, and its value is nowhere. (Its use within
	// touch_interval of its creation is not written, so "Last used" may
	// still say never.)
	b.click(`a[href$="/sessions"]`)
	b.until("the sessions page with the token", fmt.Sprintf(`!!document.querySelector('form[action$="/tokens/%s/revoke"]')`, tokenID))
	page := b.textOf(`main`)
	tokens := page[strings.Index(page, "Access tokens"):]
	if !strings.Contains(tokens, "deploy script") || strings.Contains(page, "No access tokens.") {
		t.Errorf("the token is not listed under Access tokens:\n%s", page)
	}
	if !strings.Contains(tokens, "Created just now") || !strings.Contains(tokens, "Last IP 127.0.0.1") || !expiresIn(tokens, created, time.Now().UTC(), 48*time.Hour) {
		t.Errorf("the listing lacks the token's details:\n%s", tokens)
	}
	html := eval[string](b, `document.documentElement.outerHTML`)
	if strings.Contains(html, token) || strings.Contains(html, strings.TrimPrefix(token, "sat_")) {
		t.Error("the sessions page shows the token's value")
	}
	b.screenshot("access-tokens")

	// Revoke with its button: the same client is refused.
	b.click(fmt.Sprintf(`form[action$="/tokens/%s/revoke"] button`, tokenID))
	b.until("the page after revoking", fmt.Sprintf(`!document.querySelector('form[action$="/tokens/%s/revoke"]') && document.body.innerText.includes("No access tokens.")`, tokenID))
	if res := api.do("GET", "/api/build", bearer...); res.StatusCode != 401 {
		t.Fatalf("the revoked token: %d %v", res.StatusCode, res.headers)
	}
	// The browser's own session is untouched by it.
	b.do("back to the app", chromedp.Navigate(g.base+"/"))
	b.until("the app, still signed in", `document.body.innerText.includes("upstream-body")`)
}

// expiresIn tells whether listing says the token expires life after it
// was made, some time between from and to (a day may turn in between).
func expiresIn(listing string, from, to time.Time, life time.Duration) bool {
	return strings.Contains(listing, "Expires "+from.Add(life).Format("2 Jan 2006")) ||
		strings.Contains(listing, "Expires "+to.Add(life).Format("2 Jan 2006"))
}
