package sessionauth

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/sessionauth/caddy-sessionauth/accounts"
)

// The code step offers recovery codes only to an account that has some
// left: bob, with a TOTP and no codes, is asked for his app's digits
// alone; once he made codes on the account page, the step offers them.
func TestCodeStepOffersRecoveryCodesOnlyWhenThereAreSome(t *testing.T) {
	const offer = "Enter one of your recovery codes instead."
	h, _ := accountHandler(t, &StoreConfig{Type: "memory"}, nil)
	codeStep := func(c *formClient) string {
		t.Helper()
		p := c.get("/.auth/sign-in?next=%2Fapp")
		w := c.post(url.Values{"csrf": {field(p.Body.String(), "csrf")}, "next": {"/app"}, "username": {"bob"}, "password": {"demo"}})
		if w.Code != http.StatusOK || field(w.Body.String(), "pending") == "" {
			t.Fatalf("bob's password: %d %s", w.Code, w.Body)
		}
		return w.Body.String()
	}

	c := newFormClient(t, h, "192.0.2.10")
	body := codeStep(c)
	if strings.Contains(body, offer) || !strings.Contains(body, `inputmode="numeric"`) {
		t.Fatalf("the code step of an account without recovery codes:\n%s", body)
	}
	code, _ := accounts.TOTPCode(stepUpTOTP, h.now())
	if w := c.post(url.Values{"csrf": {field(body, "csrf")}, "next": {"/app"}, "pending": {field(body, "pending")}, "code": {code}}); w.Code != http.StatusSeeOther {
		t.Fatalf("bob's code: %d %s", w.Code, w.Body)
	}
	if w := c.form("/.auth/account/recovery-codes", url.Values{"csrf": {c.csrf()}}); w.Code != http.StatusOK {
		t.Fatalf("making recovery codes: %d %s", w.Code, w.Body)
	}

	if body := codeStep(newFormClient(t, h, "192.0.2.10")); !strings.Contains(body, offer) || strings.Contains(body, `inputmode="numeric"`) {
		t.Fatalf("the code step of an account with recovery codes:\n%s", body)
	}
}
