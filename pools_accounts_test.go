package sessionauth

import (
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
)

// Two sites share a store, only one with stored accounts, and the other
// is provisioned last (the demo's hand-off and no-login sites): the admin
// API still creates the account, on the site that keeps them, and its
// invitation works there.
func TestAccountsAdminWithASharedStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sessions.db")
	h, _ := storedHandler(t, func(h *Handler) { h.Store = &StoreConfig{Type: "file", Path: path} })
	testHandler(t, func(h *Handler) { h.Store = &StoreConfig{Type: "file", Path: path} })
	inv := createAccount(t, `{"user_id":"kim"}`)
	c := newClient(t, h)
	page := c.get(inv.Invite)
	if page.Code != http.StatusOK {
		t.Fatalf("invitation page: %d %s", page.Code, page.Body)
	}
	form := url.Values{"csrf": {field(page.Body.String(), "csrf")}, "token": {field(page.Body.String(), "token")}, "password": {"kim's password"}, "confirm": {"kim's password"}}
	if w := c.postTo("/.auth/invite", form); w.Code != http.StatusSeeOther {
		t.Fatalf("set password: %d %s", w.Code, w.Body)
	}
	if u, _ := c.whoAmI(); u != "kim" {
		t.Fatalf("after the invitation: %q", u)
	}
	if w := adminDo(t, "GET", "/session-auth/accounts", ""); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"user_id":"kim"`) {
		t.Fatalf("list: %d %s", w.Code, w.Body)
	}
}
