package sessionauth

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"golang.org/x/crypto/bcrypt"

	"github.com/sessionauth/caddy-sessionauth/accounts"
	"github.com/sessionauth/caddy-sessionauth/internal/webauthntest"
	"github.com/sessionauth/caddy-sessionauth/session"
	"github.com/sessionauth/caddy-sessionauth/session/storetest"
)

// passkeyMailHandler is passkeyHandler with notify email, its outbox
// seen: alice (alice@example.com, no TOTP), password "demo".
func passkeyMailHandler(t *testing.T) (*Handler, *storetest.Clock, *outboxSeen) {
	t.Helper()
	hash, _ := bcrypt.GenerateFromPassword([]byte("demo"), bcrypt.MinCost)
	h, clock := testHandler(t, func(h *Handler) {
		h.LoginRate = &Rate{Count: 1000, Window: caddy.Duration(time.Minute)}
		h.SignIn = &SignIn{Accounts: []*Account{{User: "alice", Hash: string(hash), Name: "Alice", Email: "alice@example.com"}},
			Passkeys: &PasskeysConfig{}}
		h.BaseURL = "http://example.com" // the site's address for the mails' links, as the passkeys see it
		h.NotifyEmail = &NotifyEmail{SMTP: "127.0.0.1:1", TLS: "none", From: "gw@example.com"}
	})
	outbox := &outboxSeen{Store: h.notifier.store}
	h.notifier.store = outbox
	return h, clock, outbox
}

// Adding and removing a passkey is mailed to the account's address, with
// the passkey's name and the "Not you?" link, as the account page's
// changes are.
func TestPasskeyAddedAndRemovedMailed(t *testing.T) {
	h, _, outbox := passkeyMailHandler(t)
	c := &formClient{t: t, h: h, ip: "192.0.2.10", cookies: map[string]*http.Cookie{}}
	c.signIn("alice", nil)
	k := webauthntest.New(t, "example.com", "http://example.com")
	if w := c.addPasskey(k); w.Code != http.StatusCreated {
		t.Fatalf("register: %d %s", w.Code, w.Body)
	}
	page := c.get("/.auth/account/passkeys").Body.String()
	_, rest, _ := strings.Cut(page, `action="/.auth/account/passkeys/`)
	credID, _, _ := strings.Cut(rest, "/")
	if w := c.form("/.auth/account/passkeys/"+credID+"/remove", url.Values{"csrf": {field(page, "csrf")}}); w.Code != http.StatusSeeOther {
		t.Fatalf("remove: %d %s", w.Code, w.Body)
	}
	var got []session.Notice
	for _, n := range outbox.got {
		if n.Event == eventPasskeyAdded || n.Event == eventPasskeyRemoved {
			got = append(got, n)
		}
	}
	if len(got) != 2 || got[0].Event != eventPasskeyAdded || got[1].Event != eventPasskeyRemoved {
		t.Fatalf("passkey mails: %+v", outbox.got)
	}
	for _, n := range got {
		if n.Email != "alice@example.com" || n.Passkey == "" || !strings.Contains(n.RevokeURL, "/.auth/revoke?token=") || outbox.targets[0] != mailTarget {
			t.Fatalf("passkey mail: %+v", n)
		}
	}
}

// An account whose only second factor is a passkey: after its password,
// the second step (never the password alone), whose code field refuses a
// TOTP-looking code (no app) and takes a recovery code; a step-up by
// password asks for the passkey too.
func TestPasskeyOnlySecondStep(t *testing.T) {
	h, clock, _ := passkeyMailHandler(t)
	c := &formClient{t: t, h: h, ip: "192.0.2.10", cookies: map[string]*http.Cookie{}}
	c.signIn("alice", nil)
	k := webauthntest.New(t, "example.com", "http://example.com")
	if w := c.addPasskey(k); w.Code != http.StatusCreated {
		t.Fatalf("register: %d %s", w.Code, w.Body)
	}
	w := c.form("/.auth/account/recovery-codes", url.Values{"csrf": {c.csrf()}})
	var codes []string
	for _, m := range recoveryCodeOnPage.FindAllStringSubmatch(w.Body.String(), -1) {
		codes = append(codes, m[1])
	}
	if len(codes) != accounts.RecoveryCodeCount {
		t.Fatalf("recovery codes: %d %s", w.Code, w.Body)
	}

	o := &formClient{t: t, h: h, ip: "192.0.2.20", cookies: map[string]*http.Cookie{}}
	w = o.signInCode("alice", "123456")
	if w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), "has no authenticator app") || o.cookies["session"] != nil {
		t.Fatalf("a TOTP-looking code for a passkey-only account: %d %s", w.Code, w.Body)
	}
	if field(w.Body.String(), "pending") == "" || !strings.Contains(w.Body.String(), "Use a passkey") {
		t.Fatalf("the step is not offered again: %s", w.Body)
	}
	w = o.post(url.Values{"csrf": {field(w.Body.String(), "csrf")}, "next": {"/app"}, "pending": {field(w.Body.String(), "pending")}, "code": {codes[0]}})
	if w.Code != http.StatusSeeOther || o.method() != methodPasswordRecovery {
		t.Fatalf("a recovery code in place of the passkey: %d %s", w.Code, w.Body)
	}

	// Step-up: the password, then the passkey, on the same session.
	id := c.sessionID()
	clock.Advance(11 * time.Minute)
	_, a := c.admin()
	stepUp := c.get(a.Header().Get("Location")).Body.String()
	w = c.post(url.Values{"csrf": {field(stepUp, "csrf")}, "next": {field(stepUp, "next")}, "step_up": {"1"}, "username": {"alice"}, "password": {"demo"}})
	pending := field(w.Body.String(), "pending")
	if w.Code != http.StatusOK || pending == "" || !strings.Contains(w.Body.String(), "Use a passkey") {
		t.Fatalf("step-up by password of a passkey-only account: %d %s", w.Code, w.Body)
	}
	if seen, _ := c.admin(); seen != nil {
		t.Fatal("the password alone stepped the session up")
	}
	csrf := field(w.Body.String(), "csrf")
	q := "?step_up=1&next=%2Fadmin&pending=" + pending
	begin := c.jsonPost("/.auth/passkeys/second/begin"+q, csrf, []byte("{}"))
	if w := c.jsonPost("/.auth/passkeys/second/finish"+q, csrf, k.Get(begin.Body.Bytes())); w.Code != http.StatusOK {
		t.Fatalf("the passkey's step-up: %d %s", w.Code, w.Body)
	}
	seen, _ := c.admin()
	if seen == nil || seen.Get("X-Auth-Session") != id || seen.Get("X-Auth-Authenticated-At") != clock.Now().UTC().Format(time.RFC3339) {
		t.Fatalf("after the step-up: %v (session was %s)", seen, id)
	}
}
