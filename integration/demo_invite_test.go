package integration

import (
	"fmt"
	"net/http"
	"net/url"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sessionauth/caddy-sessionauth/internal/redisserver"
)

// `make demo` invites carol, a stored account of the no-login site, and
// prints her link: it opens the invitation page, a password chosen there
// signs her in, and the link works once. Started again on the same store,
// the demo says she has used it instead of failing.
func TestDemoInvitesCarol(t *testing.T) {
	bin := binaries(t)
	data := t.TempDir()
	port, signIn := redisserver.FreePort(t), redisserver.FreePort(t)
	env := []string{"BIN_DIR=" + bin, "REDIS_URL=", "XDG_DATA_HOME=" + data, fmt.Sprintf("PORT=%d", port), fmt.Sprintf("SIGNIN_PORT=%d", signIn)}
	for _, v := range []string{"ADMIN_PORT", "APP_PORT", "NOLOGIN_APP_PORT", "MAIL_PORT"} {
		env = append(env, fmt.Sprintf("%s=%d", v, redisserver.FreePort(t)))
	}
	cmd, out := demo(t, env)
	waitForDemo(t, fmt.Sprintf("http://localhost:%d", port), out)
	site := fmt.Sprintf("http://localhost:%d", signIn)
	link := regexp.MustCompile(regexp.QuoteMeta(site) + `/\.auth/invite\?token=[A-Za-z0-9_-]+`)
	waitUntil(t, 20*time.Second, func() bool { return link.MatchString(out.String()) })
	invite := link.FindString(out.String())
	for _, want := range []string{"carol, a stored account, is invited", site + "/.auth/account/passkeys", "Sign in with a passkey"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the banner lacks %q:\n%s", want, out)
		}
	}

	b := newBrowser(t, site)
	p := b.get(invite)
	if p.status != http.StatusOK || !strings.Contains(p.body, `value="carol"`) || p.field("token") == "" {
		t.Fatalf("the printed link: %d\n%s", p.status, p.body)
	}
	form := url.Values{"csrf": {p.field("csrf")}, "token": {p.field("token")}, "password": {"carol's password"}, "confirm": {"carol's password"}}
	if p := b.post("/.auth/invite", form); p.status != http.StatusSeeOther {
		t.Fatalf("choosing a password: %d\n%s", p.status, p.body)
	}
	if p := b.get("/"); p.status != http.StatusOK || !strings.Contains(p.body, "signed you in as <b>carol</b>") {
		t.Fatalf("carol after her invitation: %d\n%s", p.status, p.body)
	}
	if p := newBrowser(t, site).get(invite); p.status != http.StatusGone {
		t.Fatalf("the link a second time: %d", p.status)
	}

	// Again on the same store: carol is there, her link used.
	stopDemo(t, cmd)
	_, again := demo(t, env)
	waitForDemo(t, fmt.Sprintf("http://localhost:%d", port), again)
	waitUntil(t, 20*time.Second, func() bool { return strings.Contains(again.String(), "carol has used her invitation") })
	if link.MatchString(again.String()) {
		t.Fatalf("a second run invited carol again:\n%s", again)
	}
}

// stopDemo stops a demo and waits until every process it started is gone
// (Caddy lets go of its ports and the store file as it exits).
func stopDemo(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	_ = cmd.Wait()
	waitUntil(t, 20*time.Second, func() bool { return syscall.Kill(-cmd.Process.Pid, 0) == syscall.ESRCH })
}
