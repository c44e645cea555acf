package sessionauth

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/sessionauth/caddy-sessionauth/accounts"
	"github.com/sessionauth/caddy-sessionauth/session"
)

var enrolSecret = regexp.MustCompile(`id="secret" value="([A-Z2-7]+)"`)

// enrolAtSignIn signs user in with password "demo" under second_factor
// required: the enrolment page, then its first code. The app's secret.
func (c *formClient) enrolAtSignIn(user string, now func() time.Time) string {
	c.t.Helper()
	p := c.get("/.auth/sign-in?next=%2Fapp")
	w := c.post(url.Values{"csrf": {field(p.Body.String(), "csrf")}, "next": {"/app"}, "username": {user}, "password": {"demo"}})
	m := enrolSecret.FindStringSubmatch(w.Body.String())
	if w.Code != http.StatusOK || field(w.Body.String(), "enrol") == "" || m == nil || c.cookies["session"] != nil {
		c.t.Fatalf("%s's password under second_factor required: %d %s", user, w.Code, w.Body)
	}
	if u, _ := c.whoAmI(); u != "" {
		c.t.Fatal("signed in before adding a second factor")
	}
	code, _ := accounts.TOTPCode(m[1], now())
	w = c.post(url.Values{"csrf": {field(w.Body.String(), "csrf")}, "next": {"/app"}, "enrol": {field(w.Body.String(), "enrol")}, "code": {code}})
	if w.Code != http.StatusSeeOther || c.method() != session.MethodPasswordTOTP {
		c.t.Fatalf("%s's first code: %d %s", user, w.Code, w.Body)
	}
	return m[1]
}

// second_factor required for the operator's accounts: alice (Caddyfile,
// no TOTP) adds an app right after her password, before she is signed
// in; the TOTP is kept in the store (her password stays the
// Caddyfile's), audited and mailed, and the next sign-in asks its code.
// bob, whose TOTP is in the Caddyfile, signs in as before.
func TestSecondFactorRequiredOperatorAccount(t *testing.T) {
	h, clock := accountHandler(t, &StoreConfig{Type: "memory"}, func(h *Handler) {
		h.SignIn.SecondFactor = secondFactorRequired
		h.BaseURL = "https://app.example.com"
		h.NotifyEmail = &NotifyEmail{SMTP: "127.0.0.1:1", TLS: "none", From: "gw@example.com"}
	})
	outbox := &outboxSeen{Store: h.notifier.store}
	h.notifier.store = outbox
	c := newFormClient(t, h, "192.0.2.10")
	secret := c.enrolAtSignIn("alice", clock.Now)
	if u, m := c.whoAmI(); u != "alice" || m != session.MethodPasswordTOTP {
		t.Fatalf("after enrolling: %q %q", u, m)
	}
	accts, _ := storeAccounts(h.store)
	rec, err := accts.GetAccount(context.Background(), "alice")
	if err != nil || rec.Stored || rec.TOTPSecret != secret || rec.PasswordHash != "" {
		t.Fatalf("alice's record: %v %+v", err, rec)
	}
	if !slices.Contains(eventTypes(t, h, "alice"), eventTOTPAdded) {
		t.Fatalf("no totp_added event: %v", eventTypes(t, h, "alice"))
	}
	if !slices.ContainsFunc(outbox.got, func(n session.Notice) bool { return n.Event == eventTOTPAdded && n.Email == "alice@example.com" }) {
		t.Fatalf("no totp_added mail: %+v", outbox.got)
	}

	clock.Advance(time.Minute)
	next := newFormClient(t, h, "192.0.2.11")
	code, _ := accounts.TOTPCode(secret, clock.Now())
	if w := next.signInCode("alice", code); w.Code != http.StatusSeeOther || next.method() != session.MethodPasswordTOTP {
		t.Fatalf("alice's next sign-in: %d %s", w.Code, w.Body)
	}
	b := newFormClient(t, h, "192.0.2.12")
	bobCode, _ := accounts.TOTPCode(stepUpTOTP, clock.Now())
	if w := b.signInCode("bob", bobCode); w.Code != http.StatusSeeOther {
		t.Fatalf("bob, whose TOTP is the Caddyfile's: %d %s", w.Code, w.Body)
	}
}

// A Caddyfile account whose record in the store (its app, its passkeys)
// an admin disabled signs in no more, neither with its password alone
// (the disabled record's TOTP is not asked) nor at all.
func TestDisabledOperatorRecordSignsInNoMore(t *testing.T) {
	h, clock := accountHandler(t, &StoreConfig{Type: "memory"}, nil)
	accts, _ := storeAccounts(h.store)
	rec := &session.Account{UserID: "alice", TOTPSecret: stepUpTOTP, CreatedAt: clock.Now(), Disabled: true}
	if err := accts.CreateAccount(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	c := newFormClient(t, h, "192.0.2.10")
	if w := c.signInWith("alice", "demo"); w.Code == http.StatusSeeOther {
		t.Fatalf("a disabled operator record signed in: %d %s", w.Code, w.Body)
	}
	if u, _ := c.whoAmI(); u != "" {
		t.Fatalf("signed in as %q", u)
	}
	// bob, with no record, still signs in.
	b := newFormClient(t, h, "192.0.2.11")
	code, _ := accounts.TOTPCode(stepUpTOTP, clock.Now())
	if w := b.signInCode("bob", code); w.Code != http.StatusSeeOther {
		t.Fatalf("bob: %d %s", w.Code, w.Body)
	}
}
