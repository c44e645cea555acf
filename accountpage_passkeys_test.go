package sessionauth

import (
	"net/http"
	"strings"
	"testing"
)

// With passkeys on, the account page leads to the passkeys page (where
// "Add a passkey" is): a person arriving from an invitation finds it;
// without passkeys it says nothing of them.
func TestAccountPageLinksPasskeys(t *testing.T) {
	for _, on := range []bool{true, false} {
		h, _ := accountHandler(t, nil, func(h *Handler) {
			if on {
				h.SignIn.Passkeys = &PasskeysConfig{}
			}
		})
		c := newFormClient(t, h, "192.0.2.10")
		c.signIn("alice", nil)
		w := c.get("/.auth/account")
		body := w.Body.String()
		linked := strings.Contains(body, `<a class="create" href="/.auth/account/passkeys">Add a passkey</a>`) && strings.Contains(body, "None yet. A passkey signs you in")
		if w.Code != http.StatusOK || linked != on || (!on && strings.Contains(body, "Passkeys")) {
			t.Fatalf("passkeys %v: %d\n%s", on, w.Code, body)
		}
		if on {
			if p := c.get("/.auth/account/passkeys"); p.Code != http.StatusOK || !strings.Contains(p.Body.String(), "Add a passkey") {
				t.Fatalf("the linked page: %d", p.Code)
			}
		}
	}
}
