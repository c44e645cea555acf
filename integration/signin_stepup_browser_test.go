package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// activeSessions lists the ids of a user's active sessions (admin API).
func activeSessions(t *testing.T, g *gateway, user string) []string {
	t.Helper()
	var ids []string
	for _, s := range adminSessions(t, g, user) {
		if s.Active {
			ids = append(ids, s.ID)
		}
	}
	return ids
}

// A step-up in real Chromium, with cookie same_site strict: past max_age,
// /admin shows an OIDC session "Confirm it's you" with its provider's
// button; a real click leads to the provider's login form again
// (prompt=login), and after it the browser is back on /admin with the
// same session and a step_up event, although the provider's redirect to
// the callback carried no session cookie (the pending sign-in names the
// session it confirms).
func TestStepUpWithStrictCookieInABrowser(t *testing.T) {
	chrome := chromiumPath(t)
	g, _ := browserOIDCSite(t, "store memory\ncookie {\n\tsame_site strict\n}", "", func(text string) string {
		return strings.Replace(text, "\treverse_proxy {UPSTREAM}", "\tsession_require /admin* max_age "+stepUpMaxAge.String()+"\n\treverse_proxy {UPSTREAM}", 1)
	})

	b := openTab(t, chrome, 1280, 800, 60*time.Second, g.base+"/admin")
	provider := func(what string) {
		t.Helper()
		b.atProvider("true", "alice")
		b.until("/admin, "+what, fmt.Sprintf(`location.href === %q && !!document.querySelector("#user")`, g.base+"/admin"))
	}
	b.until("the sign-in page", `location.pathname === "/.auth/sign-in" && !!document.querySelector("a.button")`)
	b.click("a.button")
	provider("signed in")
	before := activeSessions(t, g, "alice@example.com")
	if len(before) != 1 {
		t.Fatalf("active sessions after the sign-in: %v", before)
	}

	time.Sleep(stepUpMaxAge + 100*time.Millisecond)
	b.do("opening /admin again", chromedp.Navigate(g.base+"/admin"))
	b.until("the step-up page", `document.title.startsWith("Confirm it's you") && !!document.querySelector("a.button")`)
	if page := b.textOf("main"); !strings.Contains(page, "signed in as Alice Example") || !strings.Contains(page, "Continue with Corp") {
		t.Fatalf("the step-up page says:\n%s", page)
	}
	b.click("a.button")
	provider("stepped up")
	if user, method := b.textOf("#user"), b.textOf("#method"); user != "alice@example.com" || method != "oidc:corp" {
		t.Fatalf("the app shows user %q, method %q", user, method)
	}
	if after := activeSessions(t, g, "alice@example.com"); len(after) != 1 || after[0] != before[0] {
		t.Fatalf("active sessions after the step-up: %v, before %v", after, before)
	}
	if _, events := g.adminDo("GET", "/session-auth/users/alice@example.com/events", ""); !strings.Contains(events, `"type":"step_up"`) {
		t.Fatalf("no step_up event: %s", events)
	}
}
