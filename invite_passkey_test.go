package sessionauth

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sessionauth/caddy-sessionauth/internal/webauthntest"
	"github.com/sessionauth/caddy-sessionauth/session/storetest"
)

// invitePost posts a passkey ceremony's JSON from the invitation page, as
// passkeys.js does: the form's CSRF token and the invitation's token in
// headers.
func (c *formClient) invitePost(target, csrf, token string, body []byte) *httptest.ResponseRecorder {
	c.t.Helper()
	r := httptest.NewRequest("POST", target, bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("X-CSRF-Token", csrf)
	if token != "" {
		r.Header.Set(inviteTokenHeader, token)
	}
	r.Header.Set("Origin", "http://example.com")
	r.Header.Set("Sec-Fetch-Site", "same-origin")
	return c.do(r, nil)
}

// addInvitePasskey runs the invitation page's "Add a passkey" with k.
func (c *formClient) addInvitePasskey(k *webauthntest.SoftKey, csrf, token string) (begin, finish *httptest.ResponseRecorder) {
	c.t.Helper()
	begin = c.invitePost("/.auth/passkeys/invite/begin", csrf, token, []byte("{}"))
	if begin.Code != http.StatusOK {
		return begin, nil
	}
	return begin, c.invitePost("/.auth/passkeys/invite/finish", csrf, token, k.Create(begin.Body.Bytes()))
}

// An invitation set up with a passkey alone (SPEC 15): the page offers
// "Add a passkey" (passkeys.js, no inline script) beside the password
// form; a passkey that does not verify the person, a bad CSRF token or a
// cross-site post leave the link working; a verifying passkey signs the
// person in (X-Auth-Method passkey), spends the invitation, is listed on
// the account with no password, is audited, and signs in again from
// another browser with no user name. On the file, memory and Redis stores.
func TestInvitePasskeyOnly(t *testing.T) {
	tokenStores(t, func(h *Handler) {
		h.SignIn = &SignIn{Stored: true, Passkeys: &PasskeysConfig{}}
	}, testInvitePasskeyOnly)
}

func testInvitePasskeyOnly(t *testing.T, h *Handler, _ *storetest.Clock) {
	inv := createAccount(t, `{"user_id":"fay","email":"fay@example.com","name":"Fay"}`)
	c := newClient(t, h)
	page := c.get(inv.Invite)
	body := page.Body.String()
	for _, want := range []string{`data-passkey="invite"`, `>Add a passkey</button>`, `<script src="/.auth/passkeys.js" defer></script>`,
		`name="password"`, `Set password and sign in`} {
		if !strings.Contains(body, want) {
			t.Fatalf("invitation page lacks %s: %d %s", want, page.Code, body)
		}
	}
	if csp := page.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline'; script") {
		t.Errorf("invitation page CSP %q", csp)
	}
	// The origin only: the token stays out of Referer, and the form's POST
	// carries a real Origin (no-referrer makes it "null", refused).
	if rp := page.Header().Get("Referrer-Policy"); rp != "strict-origin" {
		t.Errorf("invitation page Referrer-Policy %q", rp)
	}
	if strings.Contains(strings.ReplaceAll(body, `<script src=`, ""), "<script") {
		t.Errorf("inline script on the invitation page: %s", body)
	}
	csrf, token := field(body, "csrf"), field(body, "token")
	if csrf == "" || token == "" || !strings.Contains(body, `data-token="`+token+`"`) {
		t.Fatalf("csrf %q token %q: %s", csrf, token, body)
	}

	// Refused, and the link still works after each.
	if w := c.invitePost("/.auth/passkeys/invite/begin", csrf, "", []byte("{}")); w.Code != http.StatusGone || passkeyError(w) != "invite_invalid" {
		t.Errorf("begin without the token: %d %s", w.Code, w.Body)
	}
	if w := c.invitePost("/.auth/passkeys/invite/begin", csrf, "not-the-token", []byte("{}")); w.Code != http.StatusGone {
		t.Errorf("begin with another token: %d %s", w.Code, w.Body)
	}
	if w := c.invitePost("/.auth/passkeys/invite/begin", "0123456789abcdef0123456789abcdef", token, []byte("{}")); w.Code != http.StatusForbidden {
		t.Errorf("begin with a wrong CSRF token: %d %s", w.Code, w.Body)
	}
	cross := httptest.NewRequest("POST", "/.auth/passkeys/invite/begin", strings.NewReader("{}"))
	cross.Header.Set("X-CSRF-Token", csrf)
	cross.Header.Set(inviteTokenHeader, token)
	cross.Header.Set("Sec-Fetch-Site", "cross-site")
	if w := c.do(cross, nil); w.Code != http.StatusForbidden {
		t.Errorf("cross-site begin: %d %s", w.Code, w.Body)
	}
	noUV := webauthntest.New(t, "example.com", "http://example.com")
	noUV.UV = false // a security key touched without its PIN: not the person
	begin, w := c.addInvitePasskey(noUV, csrf, token)
	if o := webauthntest.ReadOptions(t, begin.Body.Bytes()); o.PublicKey.AuthenticatorSelection.UserVerification != "required" ||
		o.PublicKey.AuthenticatorSelection.ResidentKey != "required" || o.PublicKey.User.Name != "fay@example.com" {
		t.Errorf("invitation's options: %s", begin.Body)
	}
	if w == nil || w.Code != http.StatusBadRequest || passkeyError(w) != "passkey_refused" || c.cookies["session"] != nil {
		t.Fatalf("a passkey without user verification: %v", w)
	}
	if w := c.get(inv.Invite); w.Code != http.StatusOK {
		t.Fatalf("the invitation after refusals: %d", w.Code)
	}

	k := webauthntest.New(t, "example.com", "http://example.com")
	if _, w := c.addInvitePasskey(k, csrf, token); w == nil || w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"location":"/"`) {
		t.Fatalf("adding the passkey: %v", w)
	}
	if u, m := c.whoAmI(); u != "fay" || m != methodPasskey {
		t.Fatalf("after the invitation's passkey: %q %q", u, m)
	}

	// A passkey's session is an account's: the account page is hers.
	if w := c.get("/.auth/account"); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "Make recovery codes") {
		t.Errorf("the account page after the invitation's passkey: %d %s", w.Code, w.Body)
	}

	// Spent: every way in is gone.
	if w := c.get(inv.Invite); w.Code != http.StatusGone {
		t.Errorf("the spent invitation's page: %d", w.Code)
	}
	k2 := webauthntest.New(t, "example.com", "http://example.com")
	if begin, _ := c.addInvitePasskey(k2, csrf, token); begin.Code != http.StatusGone {
		t.Errorf("a second passkey from the spent invitation: %d %s", begin.Code, begin.Body)
	}
	form := url.Values{"csrf": {csrf}, "token": {token}, "password": {"correct horse"}, "confirm": {"correct horse"}}
	if w := c.postTo("/.auth/invite", form); w.Code != http.StatusGone {
		t.Errorf("a password from the spent invitation: %d", w.Code)
	}

	a, _ := getAccount(t, "fay")
	if a.Password || a.Passkeys != 1 || a.LastSignInAt == nil {
		t.Errorf("the account: %+v", a)
	}
	evs, _ := h.store.Events(context.Background(), "fay", time.Time{}, 0)
	seen := map[string]string{}
	for _, e := range evs {
		seen[e.Type] = e.Reason
	}
	if _, ok := seen[eventAccountActivated]; !ok {
		t.Errorf("no %s event: %+v", eventAccountActivated, evs)
	}
	if name, ok := seen[eventPasskeyAdded]; !ok || name == "" {
		t.Errorf("no %s event with the passkey's name: %+v", eventPasskeyAdded, evs)
	}

	// Another browser, no user name: the passkey alone.
	other := newClient(t, h)
	if w := other.passkeySignIn(k, "?next=%2F"); w.Code != http.StatusOK || other.cookies["session"] == nil {
		t.Fatalf("passkey sign-in after the invitation: %d %s", w.Code, w.Body)
	}
	if u, m := other.whoAmI(); u != "fay" || m != methodPasskey {
		t.Fatalf("signed in by the passkey: %q %q", u, m)
	}
}

// Without passkeys the invitation page has no button and no script, and
// the invitation's passkey endpoints do not exist.
func TestInvitePageWithoutPasskeys(t *testing.T) {
	h, _ := storedHandler(t, nil)
	inv := createAccount(t, `{"user_id":"gus"}`)
	c := newClient(t, h)
	page := c.get(inv.Invite)
	if body := page.Body.String(); page.Code != 200 || strings.Contains(body, "passkey") || strings.Contains(body, "<script") {
		t.Fatalf("invitation page without passkeys: %d %s", page.Code, body)
	}
	if csp := page.Header().Get("Content-Security-Policy"); strings.Contains(csp, "script-src") {
		t.Errorf("CSP without passkeys: %q", csp)
	}
	csrf, token := field(page.Body.String(), "csrf"), field(page.Body.String(), "token")
	if w := c.invitePost("/.auth/passkeys/invite/begin", csrf, token, []byte("{}")); w.Code != http.StatusNotFound {
		t.Errorf("invitation passkey begin without passkeys: %d %s", w.Code, w.Body)
	}
	if w := c.get(inv.Invite); w.Code != http.StatusOK {
		t.Errorf("the invitation after: %d", w.Code)
	}
}
