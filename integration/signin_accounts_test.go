package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"github.com/spf13/cobra"
	"golang.org/x/crypto/bcrypt"

	"github.com/sessionauth/caddy-sessionauth/internal/redisserver"
)

// bobTOTP is bob's TOTP secret in the accounts tests.
const bobTOTP = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"

// accountsSite is a site with sign_in accounts (accountsBlock).
func accountsSite(t *testing.T, storeLine, extra string) string {
	t.Helper()
	return site(storeLine + "\n" + extra + "\nsign_in {\n" + accountsBlock(t) + "}")
}

// accountsBlock is sign_in's accounts alice (password demo) and bob
// (password demo, TOTP), hashed at bcrypt's lowest cost for speed.
func accountsBlock(t *testing.T) string {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte("demo"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return `	accounts {
		alice ` + string(hash) + ` {
			email alice@example.com
			name "Alice Example"
			roles admin dev
		}
		bob ` + string(hash) + ` {
			totp ` + bobTOTP + `
		}
	}
`
}

// browser is a client with a cookie jar that does not follow redirects.
type browser struct {
	t    *testing.T
	base string
	http *http.Client
}

func newBrowser(t *testing.T, base string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: base, http: &http.Client{
		Jar: jar, Timeout: 15 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

type page struct {
	status int
	header http.Header
	body   string
}

func (b *browser) get(target string, header ...string) page {
	b.t.Helper()
	return b.send("GET", target, nil, header...)
}

func (b *browser) post(target string, form url.Values, header ...string) page {
	b.t.Helper()
	return b.send("POST", target, form, append([]string{"Content-Type", "application/x-www-form-urlencoded"}, header...)...)
}

func (b *browser) send(method, target string, form url.Values, header ...string) page {
	b.t.Helper()
	if !strings.HasPrefix(target, "http") {
		target = b.base + target
	}
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Accept", "text/html")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := b.http.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, target, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	return page{status: res.StatusCode, header: res.Header, body: string(raw)}
}

var hiddenField = regexp.MustCompile(`name="([a-z]+)" value="([^"]*)"`)

// field is the value of a hidden form field on a page.
func (p page) field(name string) string {
	for _, m := range hiddenField.FindAllStringSubmatch(p.body, -1) {
		if m[1] == name {
			return m[2]
		}
	}
	return ""
}

// signInForm loads the sign-in page and posts the accounts form with the
// page's CSRF token; extra pairs are added to the form.
func (b *browser) signInForm(next, user, password string, extra ...string) page {
	b.t.Helper()
	p := b.get("/.auth/sign-in?next=" + url.QueryEscape(next))
	if p.status != http.StatusOK {
		b.t.Fatalf("sign-in page: %d %s", p.status, p.body)
	}
	form := url.Values{"csrf": {p.field("csrf")}, "next": {p.field("next")}, "username": {user}, "password": {password}}
	for i := 0; i+1 < len(extra); i += 2 {
		form.Set(extra[i], extra[i+1])
	}
	return b.post("/.auth/sign-in", form)
}

// codeStep posts a TOTP code on the code step page p.
func (b *browser) codeStep(p page, code string) page {
	b.t.Helper()
	if p.field("pending") == "" {
		b.t.Fatalf("no code step: %d %s", p.status, p.body)
	}
	return b.post("/.auth/sign-in", url.Values{"csrf": {p.field("csrf")}, "next": {p.field("next")}, "pending": {p.field("pending")}, "code": {code}})
}

// upstreamSees fetches target through the gateway and answers the
// identity headers the upstream received.
func (b *browser) upstreamSees(target string) map[string]string {
	b.t.Helper()
	req, _ := http.NewRequest("GET", b.base+target, nil)
	req.Header.Set("Accept", "application/json")
	res, err := b.http.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	r := &response{Response: res, body: string(raw)}
	if res.StatusCode != http.StatusOK {
		b.t.Fatalf("GET %s: %d %s", target, res.StatusCode, raw)
	}
	return echoHeaders(b.t, r)
}

func echoHeaders(t *testing.T, r *response) map[string]string {
	t.Helper()
	var echo struct {
		Headers map[string]string `json:"headers"`
	}
	if err := jsonUnmarshal(r.body, &echo); err != nil {
		t.Fatalf("upstream answer %q: %v", r.body, err)
	}
	return echo.Headers
}

func currentCode(t *testing.T, at time.Time) string {
	t.Helper()
	return codeFor(t, bobTOTP, at)
}

// codeFor is what an authenticator app holding secret shows at.
func codeFor(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	code, err := totp.GenerateCodeCustom(secret, at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return code
}

func TestAccountSignIn(t *testing.T) {
	stores(t, func(t *testing.T, storeLine string, _ *redisserver.Server) {
		g := loadCaddy(t, accountsSite(t, storeLine, ""), newUpstream(t))
		b := newBrowser(t, g.base)

		// An unauthenticated browser is sent to the sign-in page.
		p := b.get("/app?x=1")
		if p.status != http.StatusSeeOther || p.header.Get("Location") != "/.auth/sign-in?next=%2Fapp%3Fx%3D1" {
			t.Fatalf("unauthenticated: %d %q", p.status, p.header.Get("Location"))
		}
		p = b.get(p.header.Get("Location"))
		for _, want := range []string{"<title>Sign in to 127.0.0.1:", `name="username"`, `name="password"`, `name="csrf"`} {
			if !strings.Contains(p.body, want) {
				t.Fatalf("sign-in page lacks %q:\n%s", want, p.body)
			}
		}
		if strings.Contains(p.body, "<script") || p.header.Get("Cache-Control") != "no-store" {
			t.Fatalf("page has script or is cacheable: %q", p.header.Get("Cache-Control"))
		}

		p = b.signInForm("/app?x=1", "alice", "demo")
		if p.status != http.StatusSeeOther || p.header.Get("Location") != "/app?x=1" {
			t.Fatalf("right password: %d %q %s", p.status, p.header.Get("Location"), p.body)
		}
		h := b.upstreamSees("/app")
		if h["X-Auth-User"] != "alice" || h["X-Auth-Method"] != "password" || h["X-Auth-Email"] != "alice@example.com" ||
			h["X-Auth-Name"] != "Alice Example" || h["X-Auth-Roles"] != "admin,dev" || h["X-Auth-Authenticated-At"] == "" {
			t.Fatalf("upstream saw %v", h)
		}
		// A next that leaves the site is not followed.
		p = newBrowser(t, g.base).signInForm("//evil.example/", "alice", "demo")
		if p.status != http.StatusSeeOther || p.header.Get("Location") != "/" {
			t.Fatalf("unsafe next: %d %q", p.status, p.header.Get("Location"))
		}
		// The session is listed like any other, with its method.
		code, body := g.adminDo("GET", "/session-auth/users/alice/sessions", "")
		if code != 200 || !strings.Contains(body, `"auth_method":"password"`) {
			t.Fatalf("admin list: %d %s", code, body)
		}
		// Signed out by an admin: the sign-in page says why.
		if code, _ := g.adminDo("DELETE", "/session-auth/users/alice/sessions", ""); code != 200 {
			t.Fatalf("revoke: %d", code)
		}
		p = b.get("/app")
		if p.status != http.StatusSeeOther || !strings.Contains(p.header.Get("Location"), "session_ended=revoked") {
			t.Fatalf("after the revocation: %d %q", p.status, p.header.Get("Location"))
		}
		if p = b.get(p.header.Get("Location")); !strings.Contains(p.body, "You were signed out from another device.") {
			t.Fatalf("the sign-in page does not say why:\n%s", p.body)
		}
	})
}

func TestAccountWrongPasswordAndUnknownUser(t *testing.T) {
	stores(t, func(t *testing.T, storeLine string, _ *redisserver.Server) {
		g := loadCaddy(t, accountsSite(t, storeLine, ""), newUpstream(t))
		b := newBrowser(t, g.base)
		wrong := b.signInForm("/", "alice", "not-demo")
		unknown := b.signInForm("/", "mallory", "demo")
		if wrong.status != http.StatusUnauthorized || unknown.status != http.StatusUnauthorized {
			t.Fatalf("statuses %d %d", wrong.status, unknown.status)
		}
		// The same page but for the user name each typed, which the form
		// keeps: nothing says which name has an account.
		if !strings.Contains(wrong.body, "Wrong user name or password.") || !strings.Contains(wrong.body, `value="alice"`) ||
			wrong.body != strings.ReplaceAll(unknown.body, "mallory", "alice") {
			t.Fatalf("answers differ:\n%s\n---\n%s", wrong.body, unknown.body)
		}
		if b.get("/app").status != http.StatusSeeOther {
			t.Fatal("a wrong password signed in")
		}
		code, body := g.adminDo("GET", "/session-auth/users/alice/events", "")
		if code != 200 || !strings.Contains(body, `"type":"login_failed"`) || !strings.Contains(body, `"reason":"password"`) {
			t.Fatalf("alice's events: %d %s", code, body)
		}
		if _, body := g.adminDo("GET", "/session-auth/users/mallory/events", ""); strings.Contains(body, "login_failed") {
			t.Fatalf("an unknown user got a trail: %s", body)
		}
	})
}

func TestAccountTOTP(t *testing.T) {
	stores(t, func(t *testing.T, storeLine string, _ *redisserver.Server) {
		g := loadCaddy(t, accountsSite(t, storeLine, ""), newUpstream(t))
		b := newBrowser(t, g.base)

		// The password alone asks for the code.
		step := b.signInForm("/app", "bob", "demo")
		if step.status != http.StatusOK || !strings.Contains(step.body, `name="code"`) || !strings.Contains(step.body, "bob") {
			t.Fatalf("code step: %d %s", step.status, step.body)
		}
		if b.get("/app").status != http.StatusSeeOther {
			t.Fatal("signed in before the code")
		}
		// A wrong code: none of the codes valid around now.
		now := time.Now()
		valid := map[string]bool{}
		for _, off := range []time.Duration{-60, -30, 0, 30, 60} {
			valid[currentCode(t, now.Add(off*time.Second))] = true
		}
		wrong := "000000"
		for i := 0; valid[wrong]; i++ {
			wrong = fmt.Sprintf("%06d", i*7919%1000000)
		}
		p := b.codeStep(step, wrong)
		if p.status != http.StatusUnauthorized || !strings.Contains(p.body, "Wrong code") {
			t.Fatalf("wrong code: %d %s", p.status, p.body)
		}
		// The code is asked again on a new step (the password was right),
		// three codes in all, then the password again.
		for try := 2; try <= 3; try++ {
			if p.field("pending") == "" || strings.Contains(p.body, `name="password"`) {
				t.Fatalf("after wrong code %d: no code step: %s", try-1, p.body)
			}
			p = b.codeStep(p, wrong)
			if p.status != http.StatusUnauthorized || !strings.Contains(p.body, "Wrong code") {
				t.Fatalf("wrong code %d: %d %s", try, p.status, p.body)
			}
		}
		if p.field("pending") != "" || !strings.Contains(p.body, `name="password"`) || !strings.Contains(p.body, "user name and password again") {
			t.Fatalf("after three wrong codes: %s", p.body)
		}
		// The code step is used once: its record is gone after a try.
		if p = b.codeStep(step, currentCode(t, time.Now())); p.status != http.StatusUnauthorized {
			t.Fatalf("a used code step: %d %s", p.status, p.body)
		}

		// Typed as authenticator apps show it, "123 456".
		code := currentCode(t, time.Now())
		p = b.codeStep(b.signInForm("/app", "bob", "demo"), code[:3]+" "+code[3:])
		if p.status != http.StatusSeeOther || p.header.Get("Location") != "/app" {
			t.Fatalf("right code: %d %s", p.status, p.body)
		}
		if h := b.upstreamSees("/app"); h["X-Auth-User"] != "bob" || h["X-Auth-Method"] != "password+totp" {
			t.Fatalf("upstream saw %v", h)
		}
		// The same code again (same 30 s step) is refused, also sent with the password.
		other := newBrowser(t, g.base)
		p = other.codeStep(other.signInForm("/app", "bob", "demo"), code)
		if p.status != http.StatusUnauthorized || !strings.Contains(p.body, "used already") {
			t.Fatalf("replayed code: %d %s", p.status, p.body)
		}
		if p = other.signInForm("/app", "bob", "demo", "code", code); p.status != http.StatusUnauthorized {
			t.Fatalf("replayed code with the password: %d %s", p.status, p.body)
		}
		_, body := g.adminDo("GET", "/session-auth/users/bob/events", "")
		if !strings.Contains(body, `"reason":"totp"`) {
			t.Fatalf("bob's events: %s", body)
		}
	})
}

func TestAccountFormRefusals(t *testing.T) {
	g := loadCaddy(t, accountsSite(t, "store memory", ""), newUpstream(t))
	b := newBrowser(t, g.base)
	p := b.get("/.auth/sign-in")
	form := url.Values{"csrf": {p.field("csrf")}, "username": {"alice"}, "password": {"demo"}}

	noToken := url.Values{"username": {"alice"}, "password": {"demo"}}
	if p := b.post("/.auth/sign-in", noToken); p.status != http.StatusForbidden || !strings.Contains(p.body, "expired") {
		t.Fatalf("no CSRF token: %d %s", p.status, p.body)
	}
	badToken := url.Values{"csrf": {strings.Repeat("0", 32)}, "username": {"alice"}, "password": {"demo"}}
	if p := b.post("/.auth/sign-in", badToken); p.status != http.StatusForbidden {
		t.Fatalf("wrong CSRF token: %d", p.status)
	}
	if p := b.post("/.auth/sign-in", form, "Sec-Fetch-Site", "cross-site"); p.status != http.StatusForbidden {
		t.Fatalf("cross-site (Sec-Fetch-Site): %d", p.status)
	}
	if p := b.post("/.auth/sign-in", form, "Origin", "https://evil.example"); p.status != http.StatusForbidden {
		t.Fatalf("cross-site (Origin): %d", p.status)
	}
	if p := b.get("/app"); p.status != http.StatusSeeOther {
		t.Fatalf("a refused form signed in: %d", p.status)
	}
	// The same form from this site's own page works.
	if p := b.post("/.auth/sign-in", form, "Origin", g.base, "Sec-Fetch-Site", "same-origin"); p.status != http.StatusSeeOther {
		t.Fatalf("same-origin form: %d %s", p.status, p.body)
	}
}

func TestAccountLoginRate(t *testing.T) {
	g := loadCaddy(t, accountsSite(t, "store memory", "login_rate 3 1m"), newUpstream(t))
	b := newBrowser(t, g.base)
	for i := 0; i < 3; i++ {
		if p := b.signInForm("/", "alice", "wrong"); p.status != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d", i+1, p.status)
		}
	}
	p := b.signInForm("/", "alice", "demo")
	if p.status != http.StatusTooManyRequests || p.header.Get("Retry-After") == "" {
		t.Fatalf("over login_rate: %d %q", p.status, p.header.Get("Retry-After"))
	}
}

// No password or code reaches a log line, whatever the outcome.
func TestAccountSecretsNeverLogged(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	text := strings.Replace(accountsSite(t, "store memory", ""),
		"\tauto_https off\n", "\tauto_https off\n\tlog {\n\t\toutput file "+logFile+"\n\t\tformat json\n\t\tlevel DEBUG\n\t}\n", 1)
	g := loadCaddy(t, text, newUpstream(t))
	b := newBrowser(t, g.base)
	b.signInForm("/", "alice", "Wrong-Pass-7431")
	b.signInForm("/", "Wrong-Pass-7432", "Wrong-Pass-7433")
	step := b.signInForm("/", "bob", "demo")
	b.codeStep(step, "918273")
	code := currentCode(t, time.Now())
	b.codeStep(b.signInForm("/", "bob", "demo"), code)
	b.signInForm("/", "alice", "demo")
	waitUntil(t, 10*time.Second, func() bool {
		raw, _ := os.ReadFile(logFile)
		return strings.Count(string(raw), "login_failed") >= 3
	})
	raw, _ := os.ReadFile(logFile)
	for _, secret := range []string{"Wrong-Pass-7431", "Wrong-Pass-7433", "918273", code, `"demo"`, "password=", bobTOTP} {
		if strings.Contains(string(raw), secret) {
			t.Errorf("the log holds %q", secret)
		}
	}
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }

// A hash printed by `caddy hash-password --algorithm argon2id` (Caddy's
// own command, run here) signs in from the Caddyfile's accounts and from
// accounts_file; a hash cut short in accounts_file stops the load with
// the file and line of the hash, in words.
func TestAccountArgon2idFromCaddyHashPassword(t *testing.T) {
	hash := caddyHashPassword(t, "demo", "--algorithm", "argon2id")
	if !strings.HasPrefix(hash, "$argon2id$") {
		t.Fatalf("hash-password printed %q", hash)
	}
	file := filepath.Join(t.TempDir(), "accounts")
	if err := os.WriteFile(file, []byte("# from a file\nbob "+hash+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	text := site("store memory\nsign_in {\n\taccounts {\n\t\talice " + hash + "\n\t}\n\taccounts_file " + file + "\n}")
	g := loadCaddy(t, text, newUpstream(t))
	for _, user := range []string{"alice", "bob"} {
		b := newBrowser(t, g.base)
		if p := b.signInForm("/app", user, "demo2"); p.status != http.StatusUnauthorized {
			t.Fatalf("%s's wrong password: %d", user, p.status)
		}
		if p := b.signInForm("/app", user, "demo"); p.status != http.StatusSeeOther || !setsSessionCookie(p) {
			t.Fatalf("%s's argon2id password: %d %s", user, p.status, p.body)
		}
	}

	// 30 characters off the 43 of a 32-byte key leave 13, which no base64
	// reads (20 off left 23, which decode to 17 bytes, a key long enough,
	// once in four runs).
	if err := os.WriteFile(file, []byte("# from a file\n\nbob "+hash[:len(hash)-30]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(strings.NewReplacer("{PORT}", "1", "{ADMIN}", "2", "{UPSTREAM}", "127.0.0.1:1").Replace(text)), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		t.Fatal(err)
	}
	err = caddy.Load(cfg, true)
	if err == nil || !strings.Contains(err.Error(), file+":3") || !strings.Contains(err.Error(), "argon2id hash") || strings.Contains(err.Error(), "crypto/") {
		t.Fatalf("a hash cut short in accounts_file: %v", err)
	}
}

// caddyHashPassword is what `caddy hash-password --plaintext pw args…`
// prints.
func caddyHashPassword(t *testing.T, pw string, args ...string) string {
	t.Helper()
	def, ok := caddycmd.Commands()["hash-password"]
	if !ok {
		t.Fatal("no `caddy hash-password` command registered")
	}
	cmd := &cobra.Command{Use: def.Name, SilenceUsage: true, SilenceErrors: true}
	def.CobraFunc(cmd)
	cmd.SetArgs(append([]string{"--plaintext", pw}, args...))
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout := os.Stdout
	os.Stdout = w
	err = cmd.Execute()
	os.Stdout = stdout
	w.Close()
	out, _ := io.ReadAll(r)
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}
