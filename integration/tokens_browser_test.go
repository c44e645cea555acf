package integration

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"os"
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

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chrome), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1100, 900))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	// The hand-off: the upstream's answer to /login names the user; the
	// first action starts the browser, so it runs without a timeout.
	if err := chromedp.Do(ctx, chromedp.Navigate(g.base+"/login?status=303&roles=deploy&user="+user)); err != nil {
		t.Fatalf("starting the browser: %v", err)
	}
	tctx, cancelTimeout := context.WithTimeout(ctx, 30*time.Second)
	defer cancelTimeout()
	step := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("browser, %s: %v", what, err)
		}
	}
	until := func(what, js string) {
		t.Helper()
		for {
			ok, err := chromedp.Run(tctx, chromedp.Evaluate[bool](js))
			if err == nil && ok {
				return
			}
			if tctx.Err() != nil {
				dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
				defer dcancel()
				where, _ := chromedp.Run(dctx, chromedp.Evaluate[string](`location.href + "\n" + document.body.innerText`))
				t.Fatalf("browser: waiting for %s: %v; the page:\n%s", what, tctx.Err(), where)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	click := func(selector string) {
		t.Helper()
		found, err := chromedp.Run(tctx, chromedp.Evaluate[bool](fmt.Sprintf(`(() => { const b = document.querySelector(%q); if (!b) return false; b.click(); return true })()`, selector)))
		step("clicking "+selector, err)
		if !found {
			t.Fatalf("browser: no %s on the page", selector)
		}
	}
	textOf := func(selector string) string {
		t.Helper()
		s, err := chromedp.Run(tctx, chromedp.Text(selector))
		step("reading "+selector, err)
		return s
	}

	until("the app after the hand-off", `location.pathname === "/" && document.body.innerText.includes("upstream-body")`)
	step("opening the sessions page", chromedp.Do(tctx, chromedp.Navigate(g.base+"/.auth/sessions")))
	until("the sessions page", `!!document.querySelector('input[name="name"]')`)
	if page := textOf(`main`); !strings.Contains(page, "Access tokens") || !strings.Contains(page, "No access tokens.") {
		t.Fatalf("sessions page before any token:\n%s", page)
	}
	step("filling the token form", chromedp.Do(tctx,
		chromedp.SetValue(`input[name="name"]`, "deploy script"),
		chromedp.SetValue(`input[name="lifetime"]`, "48h"),
	))
	created := time.Now().UTC()
	click(`button.create`)
	until("the new token's page", `!!document.querySelector("#token")`)
	shown := textOf(`main`)
	token := strings.TrimSpace(textOf(`#token`))
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
	click(`a[href$="/sessions"]`)
	until("the sessions page with the token", fmt.Sprintf(`!!document.querySelector('form[action$="/tokens/%s/revoke"]')`, tokenID))
	page := textOf(`main`)
	tokens := page[strings.Index(page, "Access tokens"):]
	if !strings.Contains(tokens, "deploy script") || strings.Contains(page, "No access tokens.") {
		t.Errorf("the token is not listed under Access tokens:\n%s", page)
	}
	if !strings.Contains(tokens, "Created just now") || !strings.Contains(tokens, "Last IP 127.0.0.1") || !expiresIn(tokens, created, time.Now().UTC(), 48*time.Hour) {
		t.Errorf("the listing lacks the token's details:\n%s", tokens)
	}
	html, err := chromedp.Run(tctx, chromedp.Evaluate[string](`document.documentElement.outerHTML`))
	step("reading the page's HTML", err)
	if strings.Contains(html, token) || strings.Contains(html, strings.TrimPrefix(token, "sat_")) {
		t.Error("the sessions page shows the token's value")
	}
	shot, err := chromedp.Run(tctx, chromedp.FullScreenshot(100))
	step("taking a screenshot", err)
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	colors := map[uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 7 {
		for x := b.Min.X; x < b.Max.X; x += 7 {
			r, gr, bl, _ := img.At(x, y).RGBA()
			colors[r>>12<<8|gr>>12<<4|bl>>12] = true
		}
	}
	if b.Dx() < 300 || b.Dy() < 300 || len(colors) < 5 {
		t.Fatalf("the screenshot looks blank: %dx%d, %d colours", b.Dx(), b.Dy(), len(colors))
	}
	if dir := os.Getenv("SESSIONAUTH_SCREENSHOTS"); dir != "" {
		_ = os.WriteFile(dir+"/access-tokens.png", shot, 0o644)
	}

	// Revoke with its button: the same client is refused.
	click(fmt.Sprintf(`form[action$="/tokens/%s/revoke"] button`, tokenID))
	until("the page after revoking", fmt.Sprintf(`!document.querySelector('form[action$="/tokens/%s/revoke"]') && document.body.innerText.includes("No access tokens.")`, tokenID))
	if res := api.do("GET", "/api/build", bearer...); res.StatusCode != 401 {
		t.Fatalf("the revoked token: %d %v", res.StatusCode, res.headers)
	}
	// The browser's own session is untouched by it.
	step("back to the app", chromedp.Do(tctx, chromedp.Navigate(g.base+"/")))
	until("the app, still signed in", `document.body.innerText.includes("upstream-body")`)
}

// expiresIn tells whether listing says the token expires life after it
// was made, some time between from and to (a day may turn in between).
func expiresIn(listing string, from, to time.Time, life time.Duration) bool {
	return strings.Contains(listing, "Expires "+from.Add(life).Format("2 Jan 2006")) ||
		strings.Contains(listing, "Expires "+to.Add(life).Format("2 Jan 2006"))
}
