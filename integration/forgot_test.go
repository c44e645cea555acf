package integration

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sessionauth/caddy-sessionauth/internal/redisserver"
)

// mailsWith are the received mails (parsed) whose subject is subject.
func (ms *mailServer) mailsWith(t *testing.T, subject string) []parsedMail {
	t.Helper()
	var out []parsedMail
	for _, m := range ms.received() {
		if p := parseMail(t, m.data); p.header.Get("Subject") == subject {
			out = append(out, p)
		}
	}
	return out
}

// Forgot password through a real Caddy, a real SMTP server and each
// store: the page answers a known and an unknown name alike; only the
// account's address gets the link, which a mail reader's GET does not
// spend; the new password works, the old one and the account's sessions
// are gone, the link works once, and "Your password was reset" follows.
func TestForgotPasswordMail(t *testing.T) {
	stores(t, func(t *testing.T, store string, _ *redisserver.Server) {
		ms := newMailServer(t, "", false, 0)
		g := loadCaddy(t, emailSite(store+"\nsign_in {\n accounts {\n stored\n }\n }", mailBlock(ms, "tls none")), newUpstream(t))
		base := strings.Replace(g.base, "127.0.0.1", "localhost", 1)
		user := "ada-" + randomID()
		status, body := g.adminDo("POST", "/session-auth/accounts", `{"user_id":"`+user+`","email":"ada@example.com","name":"Ada"}`)
		var inv struct {
			Invite string `json:"invite"`
		}
		if status != http.StatusCreated || json.Unmarshal([]byte(body), &inv) != nil {
			t.Fatalf("create: %d %s", status, body)
		}
		old := newBrowser(t, base)
		p := old.get(inv.Invite)
		if w := old.post("/.auth/invite", url.Values{"csrf": {p.field("csrf")}, "token": {p.field("token")},
			"password": {"first password"}, "confirm": {"first password"}}); w.status != http.StatusSeeOther {
			t.Fatalf("invitation: %d %s", w.status, w.body)
		}
		if seen := old.upstreamSees("/"); seen["X-Auth-User"] != user {
			t.Fatalf("after the invitation: %v", seen)
		}

		b := newBrowser(t, base)
		if sp := b.get("/.auth/sign-in"); !strings.Contains(sp.body, `href="/.auth/forgot"`) {
			t.Fatalf("the sign-in page has no forgot link: %s", sp.body)
		}
		ask := func(name string) page {
			f := b.get("/.auth/forgot")
			return b.post("/.auth/forgot", url.Values{"csrf": {f.field("csrf")}, "name": {name}})
		}
		unknown, known := ask("nobody-"+randomID()), ask(user)
		if unknown.status != http.StatusOK || known.status != http.StatusOK || unknown.body != known.body ||
			!strings.Contains(known.body, "If an account matches, we sent a link") {
			t.Fatalf("forgot answers differ:\n%d %s\n----\n%d %s", unknown.status, unknown.body, known.status, known.body)
		}
		waitUntil(t, 20*time.Second, func() bool { return len(ms.mailsWith(t, "Reset your password")) >= 1 })
		mails := ms.mailsWith(t, "Reset your password")
		if len(mails) != 1 {
			t.Fatalf("%d reset mails, want 1 (none for the unknown name)", len(mails))
		}
		var link string
		for _, line := range strings.Split(mails[0].text, "\n") {
			if strings.HasPrefix(line, base+"/.auth/forgot?token=") {
				link = line
			}
		}
		if link == "" || !strings.Contains(mails[0].html, `href="`+link+`"`) || strings.Contains(mails[0].text, "/.auth/revoke") {
			t.Fatalf("the reset mail:\n%s", mails[0].text)
		}
		for _, m := range ms.received() {
			if m.to[0] != "ada@example.com" {
				t.Fatalf("a mail to %v", m.to)
			}
		}

		// A mail reader's GET spends nothing.
		res, err := (&http.Client{Timeout: 10 * time.Second}).Get(link)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK || !strings.Contains(string(raw), "Choose a new password") {
			t.Fatalf("the link, read: %d %s", res.StatusCode, raw)
		}
		lp := b.get(link)
		form := url.Values{"csrf": {lp.field("csrf")}, "token": {lp.field("token")}, "password": {"second password"}, "confirm": {"second password"}}
		if w := b.post("/.auth/forgot", form); w.status != http.StatusOK || !strings.Contains(w.body, "Your password was changed") {
			t.Fatalf("new password: %d %s", w.status, w.body)
		}
		if w := b.post("/.auth/forgot", form); w.status != http.StatusGone {
			t.Fatalf("the link again: %d", w.status)
		}
		if w := old.get("/"); w.status == http.StatusOK {
			t.Fatal("the session from before the reset still works")
		}
		if w := newBrowser(t, base).signInForm("/", user, "first password"); w.status != http.StatusUnauthorized {
			t.Fatalf("the old password: %d", w.status)
		}
		fresh := newBrowser(t, base)
		if w := fresh.signInForm("/", user, "second password"); w.status != http.StatusSeeOther {
			t.Fatalf("the new password: %d %s", w.status, w.body)
		}
		if seen := fresh.upstreamSees("/"); seen["X-Auth-User"] != user || seen["X-Auth-Method"] != "password" {
			t.Fatalf("signed in with the new password: %v", seen)
		}
		waitUntil(t, 20*time.Second, func() bool { return len(ms.mailsWith(t, "Your password was reset")) == 1 })
	})
}
