package sessionauth

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// A sign_in site has no login path unless the config names one (issue
// 29): /login is a page like any other, behind the gateway's form, and
// an app's Session-Login there signs no one in. With `login` given, the
// hand-off works beside the form.
func TestSignInSiteHasNoLoginPathUnlessAsked(t *testing.T) {
	hash, _ := bcrypt.GenerateFromPassword([]byte("demo"), bcrypt.MinCost)
	handOff := func() *upstream {
		return &upstream{respond: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Session-Login", "bob")
			w.WriteHeader(http.StatusSeeOther)
		}}
	}
	cases := []struct {
		name  string
		login []string
	}{
		{"default", nil},
		{"login given", []string{"/login"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, _ := testHandler(t, func(h *Handler) {
				h.SignIn = &SignIn{Accounts: []*Account{{User: "alice", Hash: string(hash)}}}
				h.Login = tc.login
			})
			get := httptest.NewRequest("GET", "/login", nil)
			get.Header.Set("Accept", "text/html")
			up := handOff()
			w := serve(t, h, get, up)
			post := serve(t, h, httptest.NewRequest("POST", "/login", nil), handOff())
			var minted bool
			for _, c := range post.Result().Cookies() {
				minted = minted || (c.Name == "session" && c.Value != "")
			}
			if tc.login == nil {
				if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/.auth/sign-in?next=%2Flogin" || up.calls != 0 {
					t.Fatalf("GET /login without a session: %d %q, app reached %d times", w.Code, w.Header().Get("Location"), up.calls)
				}
				if post.Code != http.StatusUnauthorized || minted {
					t.Fatalf("a hand-off on /login: %d, session minted %v", post.Code, minted)
				}
				return
			}
			if w.Code != http.StatusSeeOther || up.calls != 1 {
				t.Fatalf("GET /login, a login path: %d, app reached %d times", w.Code, up.calls)
			}
			if !minted {
				t.Fatalf("a hand-off on the login path signed no one in: %d %v", post.Code, post.Header().Values("Set-Cookie"))
			}
		})
	}
}

// A site without sign_in keeps /login as its login path by default.
func TestLoginPathDefaultsWithoutSignIn(t *testing.T) {
	h, _ := testHandler(t, nil)
	w := serve(t, h, httptest.NewRequest("POST", "/login", nil), &upstream{respond: func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Session-Login", "bob")
		w.WriteHeader(http.StatusSeeOther)
	}})
	for _, c := range w.Result().Cookies() {
		if c.Name == "session" && c.Value != "" {
			return
		}
	}
	t.Fatalf("no hand-off on /login: %d %v", w.Code, w.Header().Values("Set-Cookie"))
}
