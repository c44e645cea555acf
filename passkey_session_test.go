package sessionauth

import (
	"net/http"
	"strings"
	"testing"

	"github.com/sessionauth/caddy-sessionauth/internal/webauthntest"
)

// A session a passkey signed in is an account's: its account page opens,
// and a step-up with the passkey confirms that same session (same
// cookie, no second session) instead of minting another.
func TestPasskeySessionIsAnAccounts(t *testing.T) {
	h, _, _ := passkeyHandler(t, "")
	c := &formClient{t: t, h: h, ip: "192.0.2.10", cookies: map[string]*http.Cookie{}}
	c.signIn("alice", nil)
	k := webauthntest.New(t, "example.com", "http://example.com")
	if w := c.addPasskey(k); w.Code != http.StatusCreated {
		t.Fatalf("register: %d %s", w.Code, w.Body)
	}

	b := &formClient{t: t, h: h, ip: c.ip, cookies: map[string]*http.Cookie{}}
	if w := b.passkeySignIn(k, "?next=%2F"); w.Code != http.StatusOK || b.cookies["session"] == nil {
		t.Fatalf("passkey sign-in: %d %s", w.Code, w.Body)
	}
	if w := b.get("/.auth/account"); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "Your account") {
		t.Fatalf("the account page of a passkey's session: %d %s", w.Code, w.Body)
	}
	before := b.cookies["session"].Value
	stepUp := b.get("/.auth/sign-in?step_up=1&next=%2Fadmin").Body.String()
	csrf := field(stepUp, "csrf")
	begin := b.jsonPost("/.auth/passkeys/login/begin?step_up=1", csrf, []byte("{}"))
	w := b.jsonPost("/.auth/passkeys/login/finish?step_up=1&next=%2Fadmin", csrf, k.Get(begin.Body.Bytes()))
	if w.Code != http.StatusOK {
		t.Fatalf("passkey step-up: %d %s", w.Code, w.Body)
	}
	if b.cookies["session"] == nil || b.cookies["session"].Value != before {
		t.Fatalf("the step-up of a passkey's session minted another: %v, was %q", b.cookies["session"], before)
	}
	if u, m := b.whoAmI(); u != "alice" || m != methodPasskey {
		t.Fatalf("after the step-up: %q %q", u, m)
	}
}
