package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/sessionauth/caddy-sessionauth/internal/redisserver"
)

// recipeRunner runs the lines of a page's sh blocks as written, against a
// gateway on this test's ports: curl through bash, with the admin API's
// localhost:2019 moved to the test's; `bin/caddy sessions …` through
// Caddy's command line in this process, with --address added (its default
// is localhost:2019).
type recipeRunner struct {
	t     *testing.T
	bash  string
	admin string // host:port
}

func newRecipeRunner(t *testing.T, g *gateway) *recipeRunner {
	t.Helper()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatalf("bash: %v", err)
	}
	if _, err := exec.LookPath("curl"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("curl is needed to run the recipes: %v", err)
		}
		t.Skipf("curl not found (%v); CI=true makes this a failure", err)
	}
	return &recipeRunner{t: t, bash: bash, admin: strings.TrimPrefix(g.admin, "http://")}
}

// lines are the commands of sh blocks (comments and blank lines left out).
func recipeLines(blocks []string) []string {
	var out []string
	for _, b := range blocks {
		for _, l := range strings.Split(b, "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
				out = append(out, l)
			}
		}
	}
	return out
}

// run runs one line and answers its output.
func (r *recipeRunner) run(line string) string {
	r.t.Helper()
	switch {
	case strings.HasPrefix(line, "curl "):
		script := strings.ReplaceAll(line, "localhost:2019", r.admin)
		out, err := exec.Command(r.bash, "-euo", "pipefail", "-c", script).CombinedOutput()
		if err != nil {
			r.t.Fatalf("%s: %v\n%s", line, err, out)
		}
		return string(out)
	case strings.HasPrefix(line, "bin/caddy sessions "):
		args := append(shellWords(r.t, strings.TrimPrefix(line, "bin/caddy sessions ")), "--address", r.admin)
		out, err := runCLI(r.t, args...)
		if err != nil {
			r.t.Fatalf("%s: %v\n%s", line, err, out)
		}
		return out
	}
	r.t.Fatalf("a recipe line this test cannot run: %s", line)
	return ""
}

// shellWords splits a command line as the shell would, for the plain
// words and "double-quoted" words the recipes use.
func shellWords(t *testing.T, line string) []string {
	var words []string
	var w strings.Builder
	inWord, quoted := false, false
	for _, r := range line {
		switch {
		case r == '"':
			quoted, inWord = !quoted, true
		case r == ' ' && !quoted:
			if inWord {
				words, inWord = append(words, w.String()), false
				w.Reset()
			}
		case r == '\'' || r == '$' || r == '\\' || r == '`':
			t.Fatalf("shellWords does not read %q in %s", r, line)
		default:
			w.WriteRune(r)
			inWord = true
		}
	}
	if quoted {
		t.Fatalf("an unclosed quote in %s", line)
	}
	if inWord {
		words = append(words, w.String())
	}
	return words
}

// The README's "People manage their own sign-in", as written: its
// Caddyfile on this test's ports, the account its curl creates follows
// the invitation, chooses a password, signs in and opens /.auth/account;
// the CLI's account gets a working invitation too.
func TestREADMEPeopleManageTheirOwnSignIn(t *testing.T) {
	heading := "## People manage their own sign-in"
	block := docBlock(t, "README.md", heading, "caddyfile")
	if !strings.Contains(block, "http://localhost:8082 {") || !strings.Contains(block, "localhost:3000") {
		t.Fatalf("the README's block changed shape:\n%s", block)
	}
	ownDataDir(t) // the block's store: the default file, in this test's data directory
	up := newUpstream(t)
	port, adminPort := redisserver.FreePort(t), redisserver.FreePort(t)
	text := fmt.Sprintf("{\n\tadmin 127.0.0.1:%d\n\tpersist_config off\n}\n", adminPort) +
		strings.NewReplacer("localhost:8082", fmt.Sprintf("localhost:%d", port), "localhost:3000", up.addr).Replace(block)
	g := &gateway{t: t, base: fmt.Sprintf("http://localhost:%d", port), admin: fmt.Sprintf("http://127.0.0.1:%d", adminPort), port: port}
	g.load(text)
	t.Cleanup(stopCaddy)

	run := newRecipeRunner(t, g)
	lines := recipeLines(docBlocks(t, "README.md", heading, "sh"))
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "curl ") || !strings.HasPrefix(lines[1], "bin/caddy sessions accounts add ") {
		t.Fatalf("the README's recipes changed shape: %q", lines)
	}
	var created struct {
		UserID    string `json:"user_id"`
		Invite    string `json:"invite"`
		ExpiresAt string `json:"expires_at"`
	}
	out := run.run(lines[0])
	if err := json.Unmarshal([]byte(out), &created); err != nil || created.UserID != "dana" || !inviteLink.MatchString(created.Invite) || created.ExpiresAt == "" {
		t.Fatalf("the curl recipe: %v\n%s", err, out)
	}

	b := newBrowser(t, g.base)
	if p := acceptInvite(t, b, created.Invite, "dana's password"); p.status != 303 {
		t.Fatalf("the invitation: %d\n%s", p.status, p.body)
	}
	other := newBrowser(t, g.base)
	if p := other.signInForm("/reports", "dana", "dana's password"); p.status != 303 || p.header.Get("Location") != "/reports" {
		t.Fatalf("dana's sign-in: %d\n%s", p.status, p.body)
	}
	if h := other.upstreamSees("/reports"); h["X-Auth-User"] != "dana" || h["X-Auth-Email"] != "dana@example.com" || h["X-Auth-Name"] != "Dana" {
		t.Fatalf("the app saw %v", h)
	}
	if p := other.get("/.auth/account"); p.status != 200 || !strings.Contains(p.body, "Your account") || !strings.Contains(p.body, `action="/.auth/account/password"`) ||
		!strings.Contains(p.body, `href="/.auth/account/passkeys"`) {
		t.Fatalf("dana's account page: %d\n%s", p.status, p.body)
	}
	if p := other.get("/.auth/account/passkeys"); p.status != 200 || !strings.Contains(p.body, "Add a passkey") {
		t.Fatalf("dana's passkeys page: %d\n%s", p.status, p.body)
	}

	out = run.run(lines[1])
	link := inviteLink.FindString(out)
	if !strings.Contains(out, "created account erin") || link == "" {
		t.Fatalf("the CLI recipe:\n%s", out)
	}
	if p := newBrowser(t, g.base).get(link); p.status != 200 || !strings.Contains(p.body, `value="erin"`) {
		t.Fatalf("erin's invitation: %d", p.status)
	}
	if code, body := g.adminDo("GET", "/session-auth/accounts/erin", ""); code != 200 || !strings.Contains(body, `"roles":["viewer"]`) || !strings.Contains(body, `"email":"erin@example.com"`) {
		t.Fatalf("erin: %d %s", code, body)
	}
}

// docs/accounts.md, as written: its Caddyfile, the accounts its recipes
// create, and each management recipe doing what the page says.
func TestDocsAccountsRecipes(t *testing.T) {
	const page = "docs/accounts.md"
	block := docBlock(t, page, "## Turning it on", "caddyfile")
	if !strings.Contains(block, "app.example.com {") || !strings.Contains(block, "localhost:3000") {
		t.Fatalf("%s's block changed shape:\n%s", page, block)
	}
	block = strings.NewReplacer("app.example.com {", "http://127.0.0.1:{PORT} {", "localhost:3000", "{UPSTREAM}").Replace(block)
	g := loadCaddy(t, "{\n\tadmin 127.0.0.1:{ADMIN}\n\tpersist_config off\n}\n"+block, newUpstream(t))
	run := newRecipeRunner(t, g)

	create := recipeLines(docBlocks(t, page, "## Creating an account", "sh"))
	if len(create) != 2 {
		t.Fatalf("creating: %q", create)
	}
	var gail struct{ Invite string }
	if out := run.run(create[0]); json.Unmarshal([]byte(out), &gail) != nil || !inviteLink.MatchString(gail.Invite) {
		t.Fatalf("%s:\n%s", create[0], out)
	}
	out := run.run(create[1])
	hugoInvite := inviteLink.FindString(out)
	if !strings.Contains(out, "created account hugo") || hugoInvite == "" {
		t.Fatalf("%s:\n%s", create[1], out)
	}
	gailBrowser, hugoBrowser := newBrowser(t, g.base), newBrowser(t, g.base)
	for who, b := range map[string]*browser{gail.Invite: gailBrowser, hugoInvite: hugoBrowser} {
		if p := acceptInvite(t, b, who, "a long password"); p.status != 303 || !reaches(b) {
			t.Fatalf("invitation %s: %d", who, p.status)
		}
	}
	if h := hugoBrowser.upstreamSees("/app"); h["X-Auth-Name"] != "Hugo Example" || h["X-Auth-Roles"] != "ops" {
		t.Fatalf("hugo: %v", h)
	}

	manage := recipeLines(docBlocks(t, page, "## Managing accounts", "sh"))
	if len(manage) != 10 {
		t.Fatalf("managing: %d lines %q", len(manage), manage)
	}
	// The admin API's recipes on gail, in order.
	if out := run.run(manage[0]); !strings.Contains(out, `"user_id":"gail"`) || !strings.Contains(out, `"roles":["ops","viewer"]`) || !strings.Contains(out, `"password":true`) {
		t.Fatalf("%s:\n%s", manage[0], out)
	}
	if out := run.run(manage[1]); !strings.Contains(out, `"disabled":true`) || !strings.Contains(out, `"roles":["viewer"]`) || reaches(gailBrowser) {
		t.Fatalf("%s: still signed in %v\n%s", manage[1], reaches(gailBrowser), out)
	}
	var reset struct{ Invite string }
	if out := run.run(manage[2]); json.Unmarshal([]byte(out), &reset) != nil || !inviteLink.MatchString(reset.Invite) {
		t.Fatalf("%s:\n%s", manage[2], out)
	}
	if out := run.run(manage[3]); !strings.Contains(out, `"revoked":`) {
		t.Fatalf("%s:\n%s", manage[3], out)
	}
	if code, _ := g.adminDo("GET", "/session-auth/accounts/gail", ""); code != 404 {
		t.Fatalf("gail after DELETE: %d", code)
	}
	// The CLI's, on hugo.
	if out := run.run(manage[4]); !strings.Contains(out, "USER") || !strings.Contains(out, "hugo") || strings.Contains(out, "gail") {
		t.Fatalf("%s:\n%s", manage[4], out)
	}
	if out := run.run(manage[5]); !strings.Contains(out, "hugo@example.com") {
		t.Fatalf("%s:\n%s", manage[5], out)
	}
	if out := run.run(manage[6]); !strings.Contains(out, "disabled hugo") || reaches(hugoBrowser) {
		t.Fatalf("%s:\n%s", manage[6], out)
	}
	if p := newBrowser(t, g.base).signInForm("/app", "hugo", "a long password"); p.status != 401 {
		t.Fatalf("disabled hugo signs in: %d", p.status)
	}
	if out := run.run(manage[7]); !strings.Contains(out, "enabled hugo") {
		t.Fatalf("%s:\n%s", manage[7], out)
	}
	again := newBrowser(t, g.base)
	if p := again.signInForm("/app", "hugo", "a long password"); p.status != 303 {
		t.Fatalf("enabled hugo: %d", p.status)
	}
	out = run.run(manage[8])
	if link := inviteLink.FindString(out); !strings.Contains(out, "reset account hugo") || link == "" || reaches(again) {
		t.Fatalf("%s:\n%s", manage[8], out)
	}
	if out := run.run(manage[9]); !strings.Contains(out, "removed account hugo") {
		t.Fatalf("%s:\n%s", manage[9], out)
	}
	if code, _ := g.adminDo("GET", "/session-auth/accounts/hugo", ""); code != 404 {
		t.Fatalf("hugo after remove: %d", code)
	}
}
