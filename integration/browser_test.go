package integration

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/png"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
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
			t.Log("used: Chromium") // for make test's summary
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium not found and CI=true: install it (apt-get install chromium)")
	}
	t.Skip("chromium not installed; with CI=true this is a failure")
	return ""
}

// tab is one tab of a real Chromium, driven by a test: every action runs
// under the test's deadline.
type tab struct {
	t    *testing.T
	root context.Context // the tab's own, for a last look at the page after the deadline
	ctx  context.Context // root with the deadline
}

// openTab starts the Chromium at chrome (chromiumPath's), its own with a
// fresh profile (no cookies), with a width×height page, and opens target. budget bounds the whole
// test, the browser's start included.
func openTab(t *testing.T, chrome string, width, height int, budget time.Duration, target string) *tab {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chrome), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(width, height))
	// The browser lives as long as the context of its first action, so
	// that one carries no timeout of its own: the allocator's parent
	// does, a little past the steps' deadline, and ends the browser
	// should the start hang.
	life, endLife := context.WithTimeout(context.Background(), budget+10*time.Second)
	actx, cancelAlloc := chromedp.NewExecAllocator(life, opts...)
	root, cancel := chromedp.NewContext(actx)
	ctx, cancelSteps := context.WithTimeout(root, budget)
	t.Cleanup(func() { cancelSteps(); cancel(); cancelAlloc(); endLife() })
	if err := chromedp.Do(root, chromedp.Navigate(target)); err != nil {
		t.Fatalf("starting the browser: %v", err)
	}
	b := &tab{t: t, root: root, ctx: ctx}
	// The window holds the browser's bar too: the page gets width×height.
	b.do("sizing the page", chromedp.EmulateViewport(int64(width), int64(height)))
	return b
}

// step fails the test on a browser error.
func (b *tab) step(what string, err error) {
	b.t.Helper()
	if err != nil {
		b.t.Fatalf("browser, %s: %v", what, err)
	}
}

// do runs actions in the tab.
func (b *tab) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	b.step(what, chromedp.Do(b.ctx, actions...))
}

// until polls a condition in the page: navigations replace the page under
// a plain element wait. At the deadline it fails with where the browser is.
func (b *tab) until(what, js string) {
	b.t.Helper()
	for {
		ok, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](js))
		if err == nil && ok {
			return
		}
		if b.ctx.Err() != nil {
			dctx, dcancel := context.WithTimeout(b.root, 5*time.Second)
			defer dcancel()
			where, _ := chromedp.Run(dctx, chromedp.Evaluate[string](`location.href + "\n" + document.body.innerText`))
			b.t.Fatalf("browser: waiting for %s: %v; the page:\n%s", what, b.ctx.Err(), where)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// click presses the element as a user does: the mouse, pressed and
// released over the middle of its box.
func (b *tab) click(selector string) {
	b.t.Helper()
	b.do("clicking "+selector, chromedp.Click(chromedp.CSS(selector)))
}

// typeInto empties a field and types text into it, key by key.
func (b *tab) typeInto(selector, text string) {
	b.t.Helper()
	b.do("typing into "+selector, chromedp.Clear(chromedp.CSS(selector)), chromedp.SendKeys(chromedp.CSS(selector), text))
}

func (b *tab) textOf(selector string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(selector)))
	b.step("reading "+selector, err)
	return s
}

// eval evaluates js in the page.
func eval[T any](b *tab, js string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](js))
	b.step("evaluating "+js, err)
	return v
}

// box is where an element is in the page, in CSS pixels from the
// document's top left corner (a full screenshot's coordinates).
type box struct{ X, Y, W, H float64 }

func (r box) String() string { return fmt.Sprintf("(%.0f,%.0f) %.0fx%.0f", r.X, r.Y, r.W, r.H) }

// boxOf is the element's box; it fails when there is no such element.
func (b *tab) boxOf(selector string) box {
	b.t.Helper()
	r := eval[[]float64](b, fmt.Sprintf(`(() => { const e = document.querySelector(%q); if (!e) return []; const r = e.getBoundingClientRect(); return [r.left + window.scrollX, r.top + window.scrollY, r.width, r.height] })()`, selector))
	if len(r) != 4 {
		b.t.Fatalf("browser: no %s on the page", selector)
	}
	return box{r[0], r[1], r[2], r[3]}
}

// shot is a full-page screenshot, decoded.
type shot struct {
	img     image.Image
	scale   float64 // device pixels per CSS pixel
	colours int     // distinct colours (4 bits a channel) on a 7-pixel grid
	size    string  // the viewport, in CSS pixels
}

// screenshot takes a full-page screenshot and fails if it looks blank
// (too small, or fewer than 5 colours). With SESSIONAUTH_SCREENSHOTS set,
// it is kept there as name.png.
func (b *tab) screenshot(name string) *shot {
	b.t.Helper()
	raw, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	b.step("taking a screenshot of the "+name, err)
	img, err := png.Decode(bytes.NewReader(raw))
	if err != nil {
		b.t.Fatalf("screenshot of the %s: %v", name, err)
	}
	vp := eval[[]float64](b, `[window.innerWidth, window.innerHeight]`)
	s := &shot{img: img, scale: float64(img.Bounds().Dx()) / vp[0], size: fmt.Sprintf("%.0fx%.0f", vp[0], vp[1])}
	colours := map[uint32]bool{}
	bounds := img.Bounds()
	for y := bounds.Min.Y; y < bounds.Max.Y; y += 7 {
		for x := bounds.Min.X; x < bounds.Max.X; x += 7 {
			colours[quantise(img.At(x, y).RGBA())] = true
		}
	}
	s.colours = len(colours)
	if dir := os.Getenv("SESSIONAUTH_SCREENSHOTS"); dir != "" {
		_ = os.WriteFile(filepath.Join(dir, name+".png"), raw, 0o644)
	}
	if bounds.Dx() < 300 || bounds.Dy() < 300 || s.colours < 5 {
		b.t.Fatalf("the screenshot of the %s looks blank: %dx%d, %d colours", name, bounds.Dx(), bounds.Dy(), s.colours)
	}
	return s
}

func quantise(r, g, b, _ uint32) uint32 { return r>>12<<8 | g>>12<<4 | b>>12 }

// rgb is a colour as CSS writes it.
type rgb struct{ R, G, B int }

func (c rgb) String() string { return fmt.Sprintf("rgb(%d,%d,%d)", c.R, c.G, c.B) }

// near tells whether two colours differ by at most tolerance in each channel.
func (c rgb) near(o rgb, tolerance int) bool {
	d := func(a, b int) bool { return a-b <= tolerance && b-a <= tolerance }
	return d(c.R, o.R) && d(c.G, o.G) && d(c.B, o.B)
}

// parseRGB reads getComputedStyle's "rgb(r, g, b)".
func parseRGB(t *testing.T, css string) rgb {
	t.Helper()
	var c rgb
	if _, err := fmt.Sscanf(strings.ReplaceAll(css, " ", ""), "rgb(%d,%d,%d)", &c.R, &c.G, &c.B); err != nil {
		t.Fatalf("colour %q: %v", css, err)
	}
	return c
}

// at is the colour at a point in CSS pixels.
func (s *shot) at(x, y float64) rgb {
	r, g, b, _ := s.img.At(int(x*s.scale), int(y*s.scale)).RGBA()
	return rgb{int(r >> 8), int(g >> 8), int(b >> 8)}
}

// nearest looks around a point, within reach CSS pixels, for the colour
// nearest to want (a 1-pixel border lands where the layout snaps it).
func (s *shot) nearest(x, y, reach float64, want rgb) rgb {
	best, bestD := rgb{}, 1<<30
	for dx := -reach; dx <= reach; dx += 1 / s.scale {
		for dy := -reach; dy <= reach; dy += 1 / s.scale {
			c := s.at(x+dx, y+dy)
			d := abs(c.R-want.R) + abs(c.G-want.G) + abs(c.B-want.B)
			if d < bestD {
				best, bestD = c, d
			}
		}
	}
	return best
}

// count is how many device pixels inside r have about colour c.
func (s *shot) count(r box, c rgb) int {
	n := 0
	for y := int(r.Y * s.scale); y < int((r.Y+r.H)*s.scale); y++ {
		for x := int(r.X * s.scale); x < int((r.X+r.W)*s.scale); x++ {
			cr, cg, cb, _ := s.img.At(x, y).RGBA()
			if (rgb{int(cr >> 8), int(cg >> 8), int(cb >> 8)}).near(c, 24) {
				n++
			}
		}
	}
	return n
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// The sessions page in a real browser: sign in on the demo app, see both
// sessions, sign out the other one with its button, and look at it.
func TestSessionsPageInABrowser(t *testing.T) {
	chrome := chromiumPath(t)
	appAddr := serveLocal(t, demoapp.New())
	g := loadCaddy(t, behind(site("store memory\nmax_sessions 0"), appAddr), nil)

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

	b := openTab(t, chrome, 1100, 900, 30*time.Second, g.base+"/") // no session: off to sign in
	b.until("the sign-in form", `location.pathname === "/login" && !!document.querySelector('input[name="password"]')`)
	b.typeInto(`input[name="username"]`, "alice")
	b.typeInto(`input[name="password"]`, demoapp.Password)
	b.click(`button[type="submit"]`)
	b.until("the home page", `location.pathname === "/" && !!document.querySelector("h1") && document.querySelector("h1").innerText.startsWith("Hello")`)
	if hello := b.textOf(`h1`); !strings.Contains(hello, "Alice Liddell") {
		t.Fatalf("after sign-in the page says %q", hello)
	}
	b.do("opening the sessions page", chromedp.Navigate(g.base+"/.auth/sessions"))
	b.until("the sessions page", `!!document.querySelector("section.card")`)
	page := b.textOf(`main`)
	for _, want := range []string{"Where you're signed in", "This device", "iPhone", "Chrome on iOS", "Sign out all other sessions"} {
		if !strings.Contains(page, want) {
			t.Errorf("sessions page lacks %q:\n%s", want, page)
		}
	}
	for _, want := range []string{"Sign out this device", "Back to " + strings.TrimPrefix(g.base, "http://"), "This computer"} {
		if !strings.Contains(page, want) {
			t.Errorf("sessions page lacks %q:\n%s", want, page)
		}
	}
	// On a phone, "Sign out all other sessions" spans the card; the
	// screenshot shows its red where the page says it is.
	b.do("narrowing to a phone", chromedp.EmulateViewport(390, 844))
	b.until("the phone layout", `document.documentElement.clientWidth <= 400`)
	button, card := b.boxOf(".all button"), b.boxOf("section.card")
	if math.Abs(button.W-card.W) >= 2 {
		t.Errorf("on a phone, Sign out all other sessions does not span the card: %v in %v", button, card)
	}
	phoneShot := b.screenshot("sessions-page-phone")
	for _, x := range []float64{button.X + 4, button.X + button.W - 4} {
		if c := phoneShot.at(x, button.Y+button.H/2); c.R < 150 || c.G > 90 || c.B > 90 {
			t.Errorf("the screenshot has no red button at x=%.0f: %v", x, c)
		}
	}
	b.do("back to a desktop", chromedp.EmulateViewport(1100, 900))
	b.click(fmt.Sprintf(`form[action$="/%s/revoke"] button`, phoneID))
	b.until("the page after signing the phone out", fmt.Sprintf(`!document.querySelector('form[action$="/%s/revoke"]') && !!document.querySelector("h2")`, phoneID))
	page = b.textOf(`main`)
	b.screenshot("sessions-page")
	if phone.from(berlinIP, "GET", "/").StatusCode != 401 {
		t.Fatal("the phone's session survived its Sign out button")
	}
	if !strings.Contains(page, "Recently signed out") {
		t.Errorf("no Recently signed out section:\n%s", page)
	}
	// "Sign out this device" ends this browser's session and leaves the page.
	b.click(`form[action$="/logout?next=/"] button`)
	b.until("the sign-in page after signing out", `location.pathname === "/login"`)
	if res := newClient(t, g).do("GET", "/.auth/sessions", "Accept", "application/json"); res.StatusCode != 401 {
		t.Fatalf("sessions without a cookie: %d", res.StatusCode)
	}
}

// behind puts a Caddyfile of site's in front of the app at addr instead of
// the test upstream.
func behind(caddyfile, addr string) string {
	return strings.Replace(caddyfile, "reverse_proxy {UPSTREAM}", "reverse_proxy "+addr, 1)
}
