package integration

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sessionauth/caddy-sessionauth/examples/demoapp"
)

// chromiumPath finds Debian's Chromium; without it the test skips, except
// with CI=true, where it fails.
func chromiumPath(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium not found and CI=true: install it (apt-get install chromium)")
	}
	t.Skip("chromium not installed; with CI=true this is a failure")
	return ""
}

// The sessions page in a real browser: sign in on the demo app, see both
// sessions, sign out the other one with its button, and look at it.
func TestSessionsPageInABrowser(t *testing.T) {
	chrome := chromiumPath(t)
	appAddr := serveLocal(t, demoapp.New())
	text := strings.Replace(site("store memory\nmax_sessions 0"), "reverse_proxy {UPSTREAM}", "reverse_proxy "+appAddr, 1)
	g := loadCaddy(t, text, nil)

	// A second session of alice's, on her phone.
	phone := newGeoClient(t, g, iPhoneChrome)
	req, _ := http.NewRequest("POST", g.base+"/login?next=%2F", strings.NewReader(url.Values{"username": {"alice"}, "password": {demoapp.Password}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", iPhoneChrome)
	res, err := phone.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	ck := sessionCookie(&response{Response: res}, "session")
	if ck == nil {
		t.Fatalf("phone sign-in: %d", res.StatusCode)
	}
	phone.cookie = ck.Value
	phoneID := strings.SplitN(ck.Value, ".", 2)[0]

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chrome), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1100, 900))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	// The first action starts the browser: no timeout on it (it would end
	// the browser); the rest run under one.
	if err := chromedp.Do(ctx, chromedp.Navigate(g.base+"/")); err != nil { // no session: off to sign in
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
	// until polls a condition in the page: navigations replace the page
	// under a plain element wait.
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
	// click presses a button as a user does: a click event on it.
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

	until("the sign-in form", `location.pathname === "/login" && !!document.querySelector('input[name="password"]')`)
	step("filling the form", chromedp.Do(tctx,
		chromedp.SetValue(`input[name="username"]`, "alice"),
		chromedp.SetValue(`input[name="password"]`, demoapp.Password),
	))
	click(`button[type="submit"]`)
	until("the home page", `location.pathname === "/" && !!document.querySelector("h1") && document.querySelector("h1").innerText.startsWith("Hello")`)
	if hello := textOf(`h1`); !strings.Contains(hello, "Alice Liddell") {
		t.Fatalf("after sign-in the page says %q", hello)
	}
	step("opening the sessions page", chromedp.Do(tctx, chromedp.Navigate(g.base+"/.auth/sessions")))
	until("the sessions page", `!!document.querySelector("section.card")`)
	page := textOf(`main`)
	for _, want := range []string{"Where you're signed in", "This device", "iPhone", "Chrome on iOS", "Sign out all other sessions"} {
		if !strings.Contains(page, want) {
			t.Errorf("sessions page lacks %q:\n%s", want, page)
		}
	}
	click(fmt.Sprintf(`form[action$="/%s/revoke"] button`, phoneID))
	until("the page after signing the phone out", fmt.Sprintf(`!document.querySelector('form[action$="/%s/revoke"]') && !!document.querySelector("h2")`, phoneID))
	page = textOf(`main`)
	shot, err := chromedp.Run(tctx, chromedp.FullScreenshot(100))
	step("taking a screenshot", err)
	if phone.from(berlinIP, "GET", "/").StatusCode != 401 {
		t.Fatal("the phone's session survived its Sign out button")
	}
	if !strings.Contains(page, "Recently signed out") {
		t.Errorf("no Recently signed out section:\n%s", page)
	}
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	colors := map[uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 7 {
		for x := b.Min.X; x < b.Max.X; x += 7 {
			r, g, bl, _ := img.At(x, y).RGBA()
			colors[r>>12<<8|g>>12<<4|bl>>12] = true
		}
	}
	if b.Dx() < 300 || b.Dy() < 300 || len(colors) < 5 {
		t.Fatalf("the screenshot looks blank: %dx%d, %d colours", b.Dx(), b.Dy(), len(colors))
	}
	if dir := os.Getenv("SESSIONAUTH_SCREENSHOTS"); dir != "" {
		_ = os.WriteFile(dir+"/sessions-page.png", shot, 0o644)
	}
}
