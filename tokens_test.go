package sessionauth

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/sessionauth/caddy-sessionauth/internal/redisserver"
	"github.com/sessionauth/caddy-sessionauth/session"
	"github.com/sessionauth/caddy-sessionauth/session/storetest"
)

// tokenStores runs fn on a handler with api_tokens and a moving clock,
// once per store: file, memory and a real Redis.
func tokenStores(t *testing.T, configure func(*Handler), fn func(t *testing.T, h *Handler, clock *storetest.Clock)) {
	for _, kind := range []string{"file", "memory", "redis"} {
		t.Run(kind, func(t *testing.T) {
			h, clock := testHandler(t, func(h *Handler) {
				switch kind {
				case "memory":
					h.Store = &StoreConfig{Type: "memory"}
				case "redis":
					srv := redisserver.Start(t)
					// A loaded CI machine (-race, other suites) can hold a
					// reply past the 500 ms default; these tests are not
					// about the deadline (redisfaults_test.go is).
					h.Store = &StoreConfig{Type: "redis", URL: "redis://" + srv.Addr, KeyPrefix: "tok:", ReadTimeout: caddy.Duration(5 * time.Second)}
				}
				h.APITokens = &APITokens{}
				h.LoginRate = &Rate{Count: 1000, Window: caddy.Duration(time.Minute)}
				if configure != nil {
					configure(h)
				}
			})
			fn(t, h, clock)
		})
	}
}

// signInFrom hands off a sign-in for user from ip.
func signInFrom(t *testing.T, h *Handler, user, ip string) *http.Cookie {
	t.Helper()
	up := &upstream{respond: func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Session-Login", user)
		w.WriteHeader(http.StatusSeeOther)
	}}
	r := httptest.NewRequest("POST", "/login", nil)
	r.Header.Set("Test-Client-IP", ip)
	r.Header.Set("User-Agent", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/605.1.15")
	for _, c := range serve(t, h, r, up).Result().Cookies() {
		if c.Name == "session" && c.Value != "" {
			return c
		}
	}
	t.Fatal("no session cookie after the hand-off")
	return nil
}

func idOf(c *http.Cookie) string {
	id, _, _ := session.ParseCredential(c.Value)
	return id
}

// postToken asks for a token as the browser holding c, from ip: JSON
// unless accept says otherwise.
func postToken(t *testing.T, h *Handler, c *http.Cookie, ip, name, accept string) *httptest.ResponseRecorder {
	t.Helper()
	page := get("/.auth/sessions", c)
	page.Header.Set("Accept", "application/json")
	page.Header.Set("Test-Client-IP", ip)
	csrf := serve(t, h, page, &upstream{}).Header().Get("X-CSRF-Token")
	var r *http.Request
	if accept == "" {
		r = httptest.NewRequest("POST", "/.auth/tokens", strings.NewReader(`{"name":"`+name+`"}`))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Accept", "application/json")
	} else {
		r = httptest.NewRequest("POST", "/.auth/tokens", strings.NewReader(url.Values{"name": {name}, "csrf": {csrf}}.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("Accept", accept)
	}
	r.Header.Set("X-CSRF-Token", csrf)
	r.Header.Set("Test-Client-IP", ip)
	r.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0")
	r.AddCookie(c)
	return serve(t, h, r, &upstream{})
}

func mustToken(t *testing.T, h *Handler, c *http.Cookie, ip, name string) tokenResponse {
	t.Helper()
	w := postToken(t, h, c, ip, name, "")
	var out tokenResponse
	if w.Code != http.StatusCreated || json.Unmarshal(w.Body.Bytes(), &out) != nil || out.Token == "" {
		t.Fatalf("creating token %q: %d %s", name, w.Code, w.Body)
	}
	return out
}

// withBearer is a request carrying an API token, from ip.
func withBearer(path, token, ip string) *http.Request {
	r := httptest.NewRequest("GET", path, nil)
	r.Header.Set("Authorization", "Bearer "+token)
	r.Header.Set("Test-Client-IP", ip)
	r.Header.Set("Accept", "application/json")
	return r
}

// SPEC 12: a token is made only within api_tokens fresh of a sign-in or
// step-up. Past it an API client gets 403 step_up_required, a browser is
// sent to the step-up (with sign_in) or told in words (without), and no
// token is made.
func TestTokenNeedsAFreshSession(t *testing.T) {
	tokenStores(t, func(h *Handler) { h.APITokens.Fresh = caddy.Duration(5 * time.Minute) }, func(t *testing.T, h *Handler, clock *storetest.Clock) {
		c := signInFrom(t, h, "ana", "192.0.2.10")
		clock.Advance(4 * time.Minute)
		mustToken(t, h, c, "192.0.2.10", "within fresh")
		clock.Advance(2 * time.Minute) // 6 minutes after the sign-in
		w := postToken(t, h, c, "192.0.2.10", "stale", "")
		if w.Code != http.StatusForbidden || strings.TrimSpace(w.Body.String()) != `{"error":"step_up_required"}` {
			t.Fatalf("API client past fresh: %d %s", w.Code, w.Body)
		}
		w = postToken(t, h, c, "192.0.2.10", "stale", "text/html")
		if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "Sign in again to create an access token") ||
			!strings.Contains(w.Body.String(), "within 5 minutes of signing in") {
			t.Fatalf("browser without sign_in: %d %s", w.Code, w.Body)
		}
		page := get("/.auth/sessions", c)
		page.Header.Set("Accept", "text/html")
		if body := serve(t, h, page, &upstream{}).Body.String(); !strings.Contains(body, "You signed in more than 5 minutes ago: creating a token asks you to sign in again first.") {
			t.Fatalf("the page does not say a token needs a new sign-in:\n%s", body)
		}
		h.signInEnabled, h.tokens.signIn = true, true
		w = postToken(t, h, c, "192.0.2.10", "stale", "text/html")
		if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/.auth/sign-in?step_up=1&next=%2F.auth%2Fsessions" {
			t.Fatalf("browser with sign_in: %d %q", w.Code, w.Header().Get("Location"))
		}
		list, _ := h.store.List(context.Background(), "ana", clock.Now(), h.policy)
		tokens := 0
		for _, s := range list {
			if s.IsToken() {
				tokens++
			}
		}
		if tokens != 1 {
			t.Fatalf("%d tokens, want only the fresh one", tokens)
		}
	})
}

// SPEC 12: a token keeps its maker's authenticated_at and risk flags, so
// max_age and no_risk refuse it as they would refuse its maker; its own
// moves raise no flag and end nothing (ip_change deny), and its device is
// "API token", not the browser that made it.
func TestTokenKeepsItsMakersProofAndFlags(t *testing.T) {
	tokenStores(t, func(h *Handler) { h.IPChange = "deny" }, func(t *testing.T, h *Handler, clock *storetest.Clock) {
		// A clean maker: the token carries no flag and moves freely.
		clean := signInFrom(t, h, "ana", "192.0.2.10")
		signedIn := clock.Now().UTC().Format(time.RFC3339)
		clock.Advance(3 * time.Minute)
		tok := mustToken(t, h, clean, "192.0.2.10", "ci")
		for _, ip := range []string{"198.51.100.1", "203.0.113.9"} { // from elsewhere, twice
			up := &upstream{}
			if w := serve(t, h, withBearer("/api", tok.Token, ip), up); w.Code != 200 {
				t.Fatalf("token from %s under ip_change deny: %d %s", ip, w.Code, w.Body)
			}
			if got := up.header.Get("X-Auth-Risk"); got != "" {
				t.Fatalf("the token's own move raised %q", got)
			}
			if up.header.Get("X-Auth-Device") != "API token" || up.header.Get("X-Auth-Browser") != "" || up.header.Get("X-Auth-OS") != "" {
				t.Fatalf("token device: %v", up.header)
			}
			if got := up.header.Get("X-Auth-Authenticated-At"); got != signedIn {
				t.Fatalf("authenticated_at %s, want the maker's %s", got, signedIn)
			}
		}
		evs, _ := h.store.Events(context.Background(), "ana", time.Time{}, 0)
		for _, e := range evs {
			if e.SessionID == tok.ID && e.Type == session.EventIPChange {
				t.Fatalf("an ip_change event for the token: %+v", e)
			}
		}
		// max_age judges the token by its maker's sign-in.
		maxAge := testRequire(t, &Require{MaxAge: caddy.Duration(5 * time.Minute)})
		if w := serve(t, h, withBearer("/reports", tok.Token, "198.51.100.1"), chain(maxAge, &upstream{})); w.Code != 200 {
			t.Fatalf("within max_age: %d", w.Code)
		}
		clock.Advance(3 * time.Minute) // 6 minutes after the sign-in, 3 after the token
		if w := serve(t, h, withBearer("/reports", tok.Token, "198.51.100.1"), chain(maxAge, &upstream{})); w.Code != http.StatusForbidden {
			t.Fatalf("past the maker's max_age: %d", w.Code)
		}
	})
	tokenStores(t, nil, func(t *testing.T, h *Handler, clock *storetest.Clock) {
		// A flagged maker (seen from a new address): the token carries the flag.
		c := signInFrom(t, h, "ben", "192.0.2.10")
		clock.Advance(time.Minute)
		tok := mustToken(t, h, c, "198.51.100.7", "from the moved browser")
		noRisk := testRequire(t, &Require{NoRisk: &[]string{}})
		up := &upstream{}
		w := serve(t, h, withBearer("/admin", tok.Token, "198.51.100.7"), chain(noRisk, up))
		if w.Code != http.StatusForbidden || up.calls != 0 {
			t.Fatalf("no_risk let a flagged session's token through: %d", w.Code)
		}
		up = &upstream{}
		serve(t, h, withBearer("/x", tok.Token, "192.0.2.10"), up)
		if got := up.header.Get("X-Auth-Risk"); got != session.FlagIPChanged {
			t.Fatalf("token risk %q, want its maker's ip-changed", got)
		}
	})
}

// SPEC 12: revoking a session ends the tokens it made (the page's Sign
// out, "Sign out all other sessions", the admin API), signing out does
// not, and "Sign out all other sessions" keeps the current session's
// tokens. The page says which tokens each button ends.
func TestRevokingASessionEndsItsTokens(t *testing.T) {
	tokenStores(t, nil, func(t *testing.T, h *Handler, clock *storetest.Clock) {
		intruder := signInFrom(t, h, "cy", "203.0.113.66")
		theirs := mustToken(t, h, intruder, "203.0.113.66", "exfil")
		owner := signInFrom(t, h, "cy", "192.0.2.10")
		mine := mustToken(t, h, owner, "192.0.2.10", "laptop")
		works := func(tok tokenResponse) bool {
			return serve(t, h, withBearer("/x", tok.Token, "192.0.2.99"), &upstream{}).Code == 200
		}

		page := get("/.auth/sessions", owner)
		page.Header.Set("Accept", "text/html")
		body := serve(t, h, page, &upstream{}).Body.String()
		for _, want := range []string{"Signing it out also revokes the access token it made: “exfil”",
			"This also revokes the access token “exfil”. Tokens this device made stay."} {
			if !strings.Contains(body, want) {
				t.Fatalf("the page does not say %q:\n%s", want, body)
			}
		}
		if strings.Contains(body, "revokes the access token it made: “laptop”") {
			t.Fatal("the page says this device's sign-out ends its tokens")
		}

		csrf := serve(t, h, func() *http.Request {
			r := get("/.auth/sessions", owner)
			r.Header.Set("Accept", "application/json")
			return r
		}(), &upstream{}).Header().Get("X-CSRF-Token")
		r := httptest.NewRequest("POST", "/.auth/sessions/"+idOf(intruder)+"/revoke", nil)
		r.Header.Set("X-CSRF-Token", csrf)
		r.AddCookie(owner)
		if w := serve(t, h, r, &upstream{}); w.Code != http.StatusNoContent {
			t.Fatalf("revoking the intruder: %d %s", w.Code, w.Body)
		}
		if works(theirs) {
			t.Fatal("the revoked session's token still works")
		}
		if !works(mine) {
			t.Fatal("revoking another session ended this session's token")
		}

		// Sign out all other sessions: ends the others' tokens, keeps ours.
		other := signInFrom(t, h, "cy", "198.51.100.5")
		otherTok := mustToken(t, h, other, "198.51.100.5", "other")
		r = httptest.NewRequest("POST", "/.auth/sessions/revoke-others", nil)
		r.Header.Set("X-CSRF-Token", csrf)
		r.AddCookie(owner)
		if w := serve(t, h, r, &upstream{}); w.Code != http.StatusNoContent {
			t.Fatalf("revoke-others: %d", w.Code)
		}
		if works(otherTok) || !works(mine) {
			t.Fatalf("after revoke-others: other's token works %v, mine %v", works(otherTok), works(mine))
		}

		// Signing out keeps the tokens.
		r = httptest.NewRequest("POST", "/.auth/logout", nil)
		r.Header.Set("Accept", "application/json")
		r.AddCookie(owner)
		if w := serve(t, h, r, &upstream{}); w.Code != http.StatusNoContent {
			t.Fatalf("logout: %d", w.Code)
		}
		if !works(mine) {
			t.Fatal("signing out ended the session's token")
		}
	})
}

// SPEC 12: at most max_per_user live tokens; one more is 409 with a
// message, and revoking one makes room.
func TestTokensPerUserCapped(t *testing.T) {
	tokenStores(t, func(h *Handler) { h.APITokens.MaxPerUser = 2 }, func(t *testing.T, h *Handler, _ *storetest.Clock) {
		c := signInFrom(t, h, "dee", "192.0.2.10")
		first := mustToken(t, h, c, "192.0.2.10", "one")
		mustToken(t, h, c, "192.0.2.10", "two")
		w := postToken(t, h, c, "192.0.2.10", "three", "")
		var body struct{ Error, Message string }
		if w.Code != http.StatusConflict || json.Unmarshal(w.Body.Bytes(), &body) != nil || body.Error != "too_many_tokens" ||
			!strings.Contains(body.Message, "You have 2 access tokens, the most this site allows") {
			t.Fatalf("a third token: %d %s", w.Code, w.Body)
		}
		if w := postToken(t, h, c, "192.0.2.10", "three", "text/html"); w.Code != http.StatusConflict || !strings.Contains(w.Body.String(), "You have too many access tokens") {
			t.Fatalf("a third token from the page: %d %s", w.Code, w.Body)
		}
		r := httptest.NewRequest("POST", "/.auth/tokens/"+first.ID+"/revoke", nil)
		r.Header.Set("Authorization", "Bearer "+first.Token)
		r.Header.Set("Accept", "application/json")
		if w := serve(t, h, r, &upstream{}); w.Code != http.StatusNoContent {
			t.Fatalf("revoking one: %d", w.Code)
		}
		mustToken(t, h, c, "192.0.2.10", "three")
	})
}

// SPEC 7, 12: making a token is the notifiable event token_created; its
// notice tells where it was made (the maker's browser) and its "Not you?"
// link ends the token and the session that made it.
func TestTokenCreatedNoticeAndLink(t *testing.T) {
	tokenStores(t, func(h *Handler) {
		h.Notify = &Notify{URL: "https://hooks.example.com/x", Events: []string{"token_created"}}
		h.BaseURL = "https://app.example.com"
	}, func(t *testing.T, h *Handler, _ *storetest.Clock) {
		maker := signInFrom(t, h, "eve", "192.0.2.10")
		tok := mustToken(t, h, maker, "192.0.2.10", "stolen")
		var n session.Notice
		for range 50 {
			ds, err := h.store.Claim(context.Background(), "test", h.Notify.URL, 10, 100*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range ds {
				if d.Notice.Event == "token_created" {
					n = d.Notice
				}
			}
			if n.Event != "" {
				break
			}
		}
		if n.SessionID != tok.ID || n.Browser != "Firefox" || n.OS != "Linux" || !strings.HasPrefix(n.RevokeURL, "https://app.example.com/.auth/revoke?token=") {
			t.Fatalf("token_created notice: %+v", n)
		}
		link := strings.TrimPrefix(n.RevokeURL, "https://app.example.com")
		r := httptest.NewRequest("GET", link, nil)
		r.Header.Set("Accept", "text/html")
		w := serve(t, h, r, &upstream{})
		if w.Code != 200 || !strings.Contains(w.Body.String(), "Revoke the token and sign out that session") || !strings.Contains(w.Body.String(), "“stolen”") {
			t.Fatalf("the link's page: %d %s", w.Code, w.Body)
		}
		if w := serve(t, h, httptest.NewRequest("POST", link, nil), &upstream{}); w.Code != 200 {
			t.Fatalf("following the link: %d %s", w.Code, w.Body)
		}
		if serve(t, h, withBearer("/x", tok.Token, "192.0.2.10"), &upstream{}).Code != http.StatusUnauthorized {
			t.Fatal("the token works after its Not you? link")
		}
		if serve(t, h, get("/x", maker), &upstream{}).Code != http.StatusUnauthorized {
			t.Fatal("the session that made the token works after the token's Not you? link")
		}
	})
}

// A session's own "Not you?" link (a new_login notice, say) ends the
// tokens it made, also after that session signed out.
func TestNotYouLinkEndsTheSessionsTokens(t *testing.T) {
	tokenStores(t, nil, func(t *testing.T, h *Handler, _ *storetest.Clock) {
		intruder := signInFrom(t, h, "fay", "203.0.113.66")
		tok := mustToken(t, h, intruder, "203.0.113.66", "backdoor")
		s, err := h.store.Get(context.Background(), idOf(intruder))
		if err != nil {
			t.Fatal(err)
		}
		link := h.Endpoints + "/revoke?token=" + h.linkToken(s)
		r := httptest.NewRequest("POST", "/.auth/logout", nil)
		r.Header.Set("Accept", "application/json")
		r.AddCookie(intruder)
		serve(t, h, r, &upstream{}) // the intruder signs out; the token stays
		if serve(t, h, withBearer("/x", tok.Token, "203.0.113.66"), &upstream{}).Code != 200 {
			t.Fatal("signing out ended the token")
		}
		r = httptest.NewRequest("GET", link, nil)
		r.Header.Set("Accept", "text/html")
		if w := serve(t, h, r, &upstream{}); w.Code != 200 || !strings.Contains(w.Body.String(), "Revoke its access tokens") || !strings.Contains(w.Body.String(), "“backdoor”") {
			t.Fatalf("the link of a signed-out session with a live token: %d %s", w.Code, w.Body)
		}
		if w := serve(t, h, httptest.NewRequest("POST", link, nil), &upstream{}); w.Code != 200 {
			t.Fatalf("following the link: %d %s", w.Code, w.Body)
		}
		if serve(t, h, withBearer("/x", tok.Token, "203.0.113.66"), &upstream{}).Code != http.StatusUnauthorized {
			t.Fatal("the token works after its maker's Not you? link")
		}
		if w := serve(t, h, httptest.NewRequest("POST", link, nil), &upstream{}); w.Code != http.StatusGone {
			t.Fatalf("the link again: %d", w.Code)
		}
	})
}
