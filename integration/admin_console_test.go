package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sessionauth/caddy-sessionauth/internal/redisserver"
)

// consoleStats is GET {endpoints}/admin/stats as SPEC 17 gives it.
type consoleStats struct {
	ActiveSessions int `json:"active_sessions"`
	Hourly         []struct {
		At            string `json:"at"`
		SignIns       int    `json:"sign_ins"`
		FailedSignIns int    `json:"failed_sign_ins"`
		Revocations   int    `json:"revocations"`
	} `json:"hourly"`
	Daily        json.RawMessage   `json:"daily"`
	ByCountry    map[string]int    `json:"by_country"`
	ByDeviceType map[string]int    `json:"by_device_type"`
	ByBrowser    map[string]int    `json:"by_browser"`
	RecentRisk   []json.RawMessage `json:"recent_risk"`
}

func (b *browser) consoleStats(base string) consoleStats {
	b.t.Helper()
	p := b.get(base+"/.auth/admin/stats", "Accept", "application/json")
	if p.status != http.StatusOK {
		b.t.Fatalf("%s stats: %d %s", base, p.status, p.body)
	}
	var st consoleStats
	if err := json.Unmarshal([]byte(p.body), &st); err != nil {
		b.t.Fatal(err)
	}
	return st
}

// Two gateways (each with a store client of its own) on one real Redis
// show the same figures: the sign-ins, failed sign-ins and revocations
// the test made through either of them.
func TestAdminConsoleTwoGatewaysOneRedis(t *testing.T) {
	srv := redisserver.Start(t)
	prefix := randomID()
	store := func(readTimeout string) string {
		return fmt.Sprintf("store redis redis://%s {\n key_prefix %s:\n read_timeout %s\n }", srv.Addr, prefix, readTimeout)
	}
	one := accountsSite(t, store("300ms"), "admin_role admin")
	siteA := one[strings.Index(one, "http://127.0.0.1:{PORT}"):]
	portB := redisserver.FreePort(t)
	siteB := strings.Replace(strings.Replace(siteA, "{PORT}", strconv.Itoa(portB), 1), "read_timeout 300ms", "read_timeout 400ms", 1)
	g := loadCaddy(t, one+siteB, newUpstream(t))
	baseA, baseB := g.base, fmt.Sprintf("http://127.0.0.1:%d", portB)

	alice := newBrowser(t, baseA)
	if p := alice.signInForm("/app", "alice", "demo"); p.status != http.StatusSeeOther {
		t.Fatalf("alice at A: %d %s", p.status, p.body)
	}
	bob := newBrowser(t, baseB)
	if p := bob.codeStep(bob.signInForm("/app", "bob", "demo"), codeFor(t, bobTOTP, time.Now())); p.status != http.StatusSeeOther {
		t.Fatalf("bob at B: %d %s", p.status, p.body)
	}
	for _, base := range []string{baseA, baseB} {
		if p := newBrowser(t, base).signInForm("/app", "bob", "wrong"); p.status != http.StatusUnauthorized {
			t.Fatalf("a wrong password at %s: %d", base, p.status)
		}
	}
	// alice, the admin, signs bob out everywhere from gateway B.
	console := alice.get(baseB + "/.auth/admin")
	if console.status != http.StatusOK {
		t.Fatalf("the console at B: %d %s", console.status, console.body)
	}
	if p := alice.post(baseB+"/.auth/admin/users/bob/revoke", url.Values{"csrf": {console.field("csrf")}}); p.status != http.StatusSeeOther {
		t.Fatalf("signing bob out: %d %s", p.status, p.body)
	}
	if p := bob.get("/app", "Accept", "application/json"); p.status != http.StatusUnauthorized {
		t.Fatalf("bob after the revoke: %d", p.status)
	}

	a, b := alice.consoleStats(baseA), alice.consoleStats(baseB)
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("the gateways disagree:\nA %+v\nB %+v", a, b)
	}
	var signIns, failed, revoked int
	for _, h := range a.Hourly {
		signIns, failed, revoked = signIns+h.SignIns, failed+h.FailedSignIns, revoked+h.Revocations
	}
	if signIns != 2 || failed != 2 || revoked != 1 || a.ActiveSessions != 1 || len(a.Hourly) != 24 {
		t.Fatalf("figures: %d sign-ins, %d failed, %d revoked, %d active, %d hours", signIns, failed, revoked, a.ActiveSessions, len(a.Hourly))
	}
	if len(a.RecentRisk) != 2 || !strings.Contains(string(a.RecentRisk[0]), `"type":"login_failed"`) {
		t.Fatalf("recent: %s", a.RecentRisk)
	}
	t.Logf("both gateways: %d sign-ins, %d failed, %d revoked, %d active", signIns, failed, revoked, a.ActiveSessions)
}

// The console in a real Chromium, on a desktop and a phone: the charts
// are drawn (the series' colours where the SVG puts them), the page fits
// a phone's width, and a search and a "Sign out" work by clicking.
func TestAdminConsoleInABrowser(t *testing.T) {
	chrome := chromiumPath(t)
	g := loadCaddy(t, behind(accountsSite(t, "store memory", "admin_role admin"), identityApp(t)), nil)
	bob := newBrowser(t, g.base)
	if p := bob.codeStep(bob.signInForm("/app", "bob", "demo"), codeFor(t, bobTOTP, time.Now())); p.status != http.StatusSeeOther {
		t.Fatalf("bob: %d %s", p.status, p.body)
	}
	if p := newBrowser(t, g.base).signInForm("/app", "bob", "wrong"); p.status != http.StatusUnauthorized {
		t.Fatalf("a wrong password: %d", p.status)
	}

	b := openTab(t, chrome, 1280, 900, 90*time.Second, g.base+"/.auth/admin")
	b.until("the sign-in page", `location.pathname === "/.auth/sign-in" && !!document.querySelector("#password")`)
	b.typeInto("#username", "alice")
	b.typeInto("#password", "demo")
	b.click(`button[type="submit"]`)
	b.until("the console", `location.pathname === "/.auth/admin" && !!document.querySelector('svg[data-chart="hourly"]')`)
	if n := eval[int](b, `document.querySelectorAll('svg[data-chart="hourly"] rect').length`); n < 2 {
		t.Fatalf("the hourly chart has %d bars", n)
	}
	if active := b.textOf("#active-sessions"); active != "2" {
		t.Fatalf("active sessions: %q", active)
	}
	s := b.screenshot("admin-console")
	for _, chart := range []struct {
		selector string
		colours  []rgb
	}{
		{`svg[data-chart="hourly"]`, []rgb{{0x1f, 0x5f, 0xd1}, {0xb4, 0x23, 0x18}}},
		{`svg[data-chart="daily"]`, []rgb{{0x1f, 0x5f, 0xd1}, {0xb4, 0x23, 0x18}}},
		{`svg[data-chart="by-browser"]`, []rgb{{0x1f, 0x5f, 0xd1}}},
	} {
		r := b.boxOf(chart.selector)
		for _, c := range chart.colours {
			if n := s.count(r, c); n < 20 {
				t.Errorf("%s at %v: %d pixels of %v, the chart is not drawn", chart.selector, r, n, c)
			}
		}
	}
	t.Logf("screenshot console %s: %d colours; charts drawn in their series' colours", s.size, s.colours)

	b.do("turning into a phone", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateScale(3)))
	b.until("the phone layout", `window.innerWidth === 390`)
	width := eval[[]float64](b, `[document.scrollingElement.scrollWidth, window.innerWidth]`)
	if width[0] > width[1] {
		t.Errorf("on a phone the console scrolls sideways: %.0f wide in %.0f", width[0], width[1])
	}
	chart := b.boxOf(`svg[data-chart="hourly"]`)
	if chart.X < 0 || chart.X+chart.W > width[1] || chart.W < 250 {
		t.Errorf("on a phone the hourly chart is at %v, not within the screen's %.0f", chart, width[1])
	}
	s = b.screenshot("admin-console-phone")
	if n := s.count(chart, rgb{0x1f, 0x5f, 0xd1}); n < 10 {
		t.Errorf("on a phone the hourly chart shows %d pixels of its sign-ins colour", n)
	}
	t.Logf("screenshot console %s (phone): %d colours; chart at %v fits", s.size, s.colours, chart)
	b.do("back to a desktop", chromedp.EmulateViewport(1280, 900))
	b.until("the desktop layout", `window.innerWidth === 1280`)

	b.typeInto(`input[name="q"]`, "bob")
	b.click(`form[role="search"] button`)
	b.until("the search's results", `!!document.querySelector("[data-session] button")`)
	s = b.screenshot("admin-console-search")
	t.Logf("screenshot search %s: %d colours; %s", s.size, s.colours, boxShows(b, s, "[data-session] button", true))
	b.click("[data-session] button")
	b.until("the notice", `!!document.querySelector(".notice")`)
	if said := b.textOf(".notice"); said != "Signed out 1 session." {
		t.Fatalf("after the sign-out the console says %q", said)
	}
	if p := bob.get("/app", "Accept", "application/json"); p.status != http.StatusUnauthorized {
		t.Fatalf("bob after the sign-out: %d", p.status)
	}
	if n := eval[int](b, `document.querySelectorAll("[data-session]").length`); n != 0 {
		t.Fatalf("bob still has %d sessions listed", n)
	}
}

// The admin console's recipes run as written: the README's demo names
// Caddyfile.example's line, and the configuration page's (alice, password demo, with the role) opens
// the console for alice.
func TestDocsAdminConsoleRecipes(t *testing.T) {
	// The README's demo names the line Caddyfile.example gives alice's site
	// (TestCaddyfileExampleWithDemoApp opens the console with it).
	example, err := os.ReadFile("../Caddyfile.example")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(docSection(t, "README.md", "## The demo"), "(`admin_role admin`)") || !strings.Contains(string(example), "\t\tadmin_role admin\n") {
		t.Fatal("the README's demo and Caddyfile.example disagree on admin_role")
	}
	block := docBlock(t, "docs/configuration.md", "### The admin console", "caddyfile")
	if !strings.HasPrefix(block, "app.example.com {\n") || !strings.Contains(block, "reverse_proxy localhost:3000") {
		t.Fatalf("the recipe changed shape:\n%s", block)
	}
	text := strings.Replace(strings.Replace(block, "app.example.com {", "http://127.0.0.1:{PORT} {", 1), "localhost:3000", "{UPSTREAM}", 1)
	g := loadCaddy(t, "{\n\tadmin 127.0.0.1:{ADMIN}\n\tpersist_config off\n}\n"+text, newUpstream(t))
	alice := newBrowser(t, g.base)
	if p := alice.signInForm("/", "alice", "demo"); p.status != http.StatusSeeOther {
		t.Fatalf("alice: %d %s", p.status, p.body)
	}
	if p := alice.get("/.auth/admin"); p.status != http.StatusOK || !strings.Contains(p.body, "<h1>Admin console</h1>") {
		t.Fatalf("the console: %d %s", p.status, p.body)
	}
	if st := alice.consoleStats(g.base); st.ActiveSessions != 1 {
		t.Fatalf("active sessions: %d", st.ActiveSessions)
	}
}
