package sessionauth

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// fuzzSignInHandler has an account alice (password demo) and a provider
// whose issuer does not answer; login_rate out of the way.
func fuzzSignInHandler(f *testing.F) *Handler {
	hash, _ := bcrypt.GenerateFromPassword([]byte("demo"), bcrypt.MinCost)
	h, _ := testHandler(f, func(h *Handler) {
		h.LoginRate = &Rate{Count: 1 << 30, Window: 60e9}
		h.SignIn = &SignIn{
			OIDC:     []*OIDCProvider{{Name: "corp", Issuer: "http://127.0.0.1:1/", ClientID: "gateway"}},
			Accounts: []*Account{{User: "alice", Hash: string(hash)}},
		}
	})
	return h
}

func sessionSet(w *httptest.ResponseRecorder) bool {
	for _, c := range w.Result().Cookies() {
		if c.Name == "session" && c.Value != "" {
			return true
		}
	}
	return false
}

// The callback's query, whatever it holds: never a 5xx, never a session,
// never the upstream, and nothing of it unescaped in the page.
func FuzzCallbackQuery(f *testing.F) {
	for _, s := range []string{"", "code=x&state=y", "state=", "state=" + strings.Repeat("a", 200), "error=access_denied&state=s",
		"error=<script>alert(1)</script>&state=s", "code=%zz", "state=a&state=b", "code=x&state=y;z", "\x00", "state=%00",
		"error_description=" + strings.Repeat("%41", 3000)} {
		f.Add(s, false)
		f.Add(s, true)
	}
	h := fuzzSignInHandler(f)
	f.Fuzz(func(t *testing.T, rawQuery string, withCookie bool) {
		r := httptest.NewRequest("GET", "/.auth/callback/corp", nil)
		r.URL.RawQuery = rawQuery
		r.Header.Set("Accept", "text/html")
		if withCookie {
			r.AddCookie(&http.Cookie{Name: "session" + oidcCookieSuffix, Value: "binding"})
		}
		up := &upstream{}
		w := serve(t, h, r, up)
		if w.Code >= 500 || up.calls != 0 || sessionSet(w) {
			t.Fatalf("query %q: %d, upstream %d, cookies %v", rawQuery, w.Code, up.calls, w.Header().Values("Set-Cookie"))
		}
		if strings.Contains(w.Body.String(), "<script") {
			t.Fatalf("query %q reached the page unescaped", rawQuery)
		}
	})
}

// The accounts form, whatever its body: never a 5xx, never the upstream,
// and a session only for alice's right password with the form's token.
func FuzzAccountsForm(f *testing.F) {
	for _, s := range []string{"", "username=alice&password=demo&csrf=TOKEN", "username=alice&password=demo", "username=bob&password=demo&csrf=TOKEN",
		"username=alice&password=" + strings.Repeat("x", 100) + "&csrf=TOKEN", "pending=abc&code=123456&csrf=TOKEN", "pending=&code=&csrf=TOKEN",
		"username=%00&password=%ff&csrf=TOKEN", "csrf=TOKEN&csrf=other&username=alice&password=demo", "next=//evil&username=alice&password=demo&csrf=TOKEN",
		"%zz", strings.Repeat("a=b&", 5000)} {
		f.Add(s)
	}
	h := fuzzSignInHandler(f)
	const token = "0123456789abcdef0123456789abcdef"
	f.Fuzz(func(t *testing.T, body string) {
		body = strings.ReplaceAll(body, "TOKEN", token)
		r := httptest.NewRequest("POST", "/.auth/sign-in", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("Accept", "text/html")
		r.AddCookie(&http.Cookie{Name: "session" + signInCookieSuffix, Value: token})
		up := &upstream{}
		w := serve(t, h, r, up)
		if w.Code >= 500 || up.calls != 0 {
			t.Fatalf("body %q: %d, upstream %d", body, w.Code, up.calls)
		}
		if sessionSet(w) {
			form, err := url.ParseQuery(body)
			if err != nil || form.Get("username") != "alice" || form.Get("password") != "demo" || form.Get("csrf") != token {
				t.Fatalf("body %q signed in", body)
			}
			if loc := w.Header().Get("Location"); loc != safeNext(form.Get("next")) {
				t.Fatalf("body %q: redirected to %q", body, loc)
			}
		}
	})
}
