package sessionauth

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"net/url"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// The seeds are the advisory classes of the gateway's peers: open
// redirects, path tricks against skip-auth rules, header aliases,
// malformed cookies, CR/LF in upstream values.

func FuzzSafeNext(f *testing.F) {
	for _, s := range []string{"/", "/ok?x=1#y", "//evil.example", "///evil", "/\\evil", "\\\\evil", "https://evil",
		"http:evil", "javascript:alert(1)", "/%2F%2Fevil", "/\t/evil", "/\r\nSet-Cookie: x", "/\u2028", "/\u00a0/evil",
		"/.%2e/", " /x", "/x\x00", "//\\evil", "/%5Cevil", "data:text/html,x", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, next string) {
		got := safeNext(next)
		if got != "/" && got != next {
			t.Fatalf("safeNext(%q) = %q: neither the input nor /", next, got)
		}
		if !strings.HasPrefix(got, "/") || strings.HasPrefix(got, "//") || strings.ContainsRune(got, '\\') {
			t.Fatalf("safeNext(%q) = %q leaves the origin", next, got)
		}
		for _, r := range got {
			if unicode.IsSpace(r) || unicode.IsControl(r) {
				t.Fatalf("safeNext(%q) = %q has %q", next, got, r)
			}
		}
		if u, err := url.Parse(got); err == nil && (u.Scheme != "" || u.Host != "") {
			t.Fatalf("safeNext(%q) = %q names another origin", next, got)
		}
	})
}

func FuzzLoginPath(f *testing.F) {
	for _, s := range []string{"/login", "/login/", "/login/../admin", "/login%2F..%2Fadmin", "/x%2F..%2Flogin",
		"/login%23", "/admin%23/login", "/login;x=1", "/admin;/login", "/auth/..%2Fadmin", "/%2e%2e/login",
		"/auth/%2e%2e/admin", "/auth/callback", "//login", "/login%00", "/LOGIN", "/auth", "/auth%2f"} {
		f.Add(s)
	}
	h := &Handler{Login: []string{"/login", "/auth/*"}}
	h.applyDefaults()
	for _, p := range h.Login {
		lp, _ := parseLoginPath(p)
		h.logins = append(h.logins, lp)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := url.Parse("http://example.com" + raw)
		if err != nil || u.Path == "" {
			return
		}
		r := &http.Request{Method: "GET", URL: u, Header: http.Header{}}
		if !h.isLogin(requestPath(r)) {
			return
		}
		// Matched: then every reading of the raw path (decoded once,
		// decoded twice, cleaned) is a login path too, so no upstream can
		// read the request as somewhere else.
		readings := []string{u.Path, u.EscapedPath()}
		if twice, err := url.PathUnescape(u.Path); err == nil {
			readings = append(readings, twice)
		}
		for _, p := range readings {
			c := path.Clean("/" + p)
			if c != "/login" && c != "/auth" && !strings.HasPrefix(c, "/auth/") {
				t.Fatalf("%q matched a login path, but reads as %q", raw, c)
			}
		}
	})
}

func FuzzSanitise(f *testing.F) {
	for _, s := range []string{"alice", "a\r\nb", "a\x00b", "\xff\xfe", "zoë", "\u0085", "\t", strings.Repeat("é", 300)} {
		f.Add(s, 16)
	}
	f.Fuzz(func(t *testing.T, s string, max int) {
		if max < 0 || max > 1<<16 {
			return
		}
		got := sanitise(s, max)
		if len(got) > max || !utf8.ValidString(got) {
			t.Fatalf("sanitise(%q, %d) = %q", s, max, got)
		}
		for _, r := range got {
			if r < ' ' || r == 0x7f || (r >= 0x80 && r <= 0x9f) {
				t.Fatalf("sanitise(%q) kept %q", s, r)
			}
		}
	})
}

func FuzzCaddyfile(f *testing.F) {
	for _, s := range []string{
		"lifetime 1h", "idle_timeout 0", "touch_interval 5m\nidle_timeout 5m", "cookie __Host-x {\n domain d\n}",
		"store redis redis://u:p@h:1/2 {\n db 3\n}", "store redis {\n addresses a b\n master m\n}", "login /a /b*",
		"unauthenticated redirect https://x", "max_sessions 3 reject", "notify https://x {\n events revoke\n}",
		"login_rate 1 1s", "store_unavailable grace 1m", "header_prefix X-", "}", "{", "store", "cookie {\n}",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		var h Handler
		if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("session_auth {\n" + body + "\n}")); err != nil {
			if !strings.Contains(err.Error(), "Testfile:") {
				t.Fatalf("error without file:line: %v", err)
			}
			return
		}
		// Accepted: it must provision's checks as well.
		h.copyNested()
		h.applyDefaults()
		if err := h.check(); err != nil {
			t.Fatalf("parser accepted what check refuses: %v\n%s", err, body)
		}
	})
}

// FuzzCookieAndHandOff drives the handler with arbitrary cookies and
// arbitrary hand-off headers from the upstream.
// Whatever a client puts in Connection, a proxy that then deletes the
// headers it names (as Caddy's reverse_proxy does: split at commas, trim,
// Del) removes no identity header, and every other token is kept.
func FuzzConnectionTokens(f *testing.F) {
	for _, s := range []string{
		"X-Auth-Risk, X-Auth-Ip-Changed", "keep-alive", "Upgrade, x_auth_user", " X.Auth.Roles ,,close",
		"\tx-auth-ip\t", "X-Auth-\u00a0", "X-Authority", "x-auth-user\r\n", ",",
	} {
		f.Add(s)
	}
	hn := newHeaderNames("X-Auth-")
	identity := []string{hn.user, hn.roles, hn.ip, hn.ipChanged, hn.risk, hn.signature}
	f.Fuzz(func(t *testing.T, conn string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header["Connection"] = []string{conn}
		hn.stripIdentity(r)
		for _, name := range identity {
			r.Header[name] = []string{"v"}
		}
		var kept []string
		for _, v := range r.Header["Connection"] {
			for tok := range strings.SplitSeq(v, ",") {
				if tok = textproto.TrimString(tok); tok != "" {
					kept = append(kept, strings.TrimSpace(tok))
					r.Header.Del(tok)
				}
			}
		}
		for _, name := range identity {
			if r.Header.Get(name) != "v" {
				t.Fatalf("Connection %q still removes %s (left %q)", conn, name, r.Header["Connection"])
			}
		}
		for tok := range strings.SplitSeq(conn, ",") {
			if tok = strings.TrimSpace(tok); tok != "" && !strings.HasPrefix(strings.ToLower(strings.NewReplacer("_", "-", ".", "-").Replace(tok)), "x-auth-") && !slices.Contains(kept, tok) {
				t.Fatalf("Connection %q lost the token %q (left %q)", conn, tok, r.Header["Connection"])
			}
		}
	})
}

func FuzzCookieAndHandOff(f *testing.F) {
	h := &Handler{LoginRate: &Rate{Count: 1 << 30, Window: caddy.Duration(1e9)}, GuessRate: &Rate{Count: 1 << 30, Window: caddy.Duration(1e9)},
		Store: &StoreConfig{Type: "file", Path: filepath.Join(f.TempDir(), "sessions.db")}}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := h.Provision(ctx); err != nil {
		f.Fatal(err)
	}
	defer h.Cleanup()
	good := signInFuzz(f, h)
	for _, s := range []struct{ cookie, login, name string }{
		{"session=" + good, "alice", "Alice"},
		{"session=" + good + "; session=" + good, "bob", "Bob\tB"},
		{"session=garbage", "", ""},
		{"session=\"" + good + "\"", "u", strings.Repeat("n", 4096)},
		{"Session=" + good, "x\x00y", "a\r\nb"},
		{"session=" + strings.Repeat("a", 5000), strings.Repeat("u", 300), ""},
		{"", "é", "\xff"},
	} {
		f.Add(s.cookie, s.login, s.name)
	}
	f.Fuzz(func(t *testing.T, cookie, login, name string) {
		for _, p := range []string{"/app", "/login"} {
			r := httptest.NewRequest("POST", p, nil)
			r.Header["Cookie"] = []string{cookie}
			r.Header["X-Auth-User"] = []string{"mallory"}
			var seen http.Header
			next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
				seen = r.Header.Clone()
				w.Header()["Session-Login"] = []string{login}
				w.Header()["Session-Login-Name"] = []string{name}
				w.WriteHeader(http.StatusSeeOther)
				return nil
			})
			repl := caddy.NewReplacer()
			rctx := context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl)
			rctx = context.WithValue(rctx, caddyhttp.VarsCtxKey, map[string]any{caddyhttp.ClientIPVarKey: "192.0.2.1"})
			w := httptest.NewRecorder()
			if err := h.ServeHTTP(w, r.WithContext(rctx), next); err != nil {
				t.Fatalf("ServeHTTP: %v", err)
			}
			if w.Code >= 500 && w.Code != 502 && w.Code != 503 {
				t.Fatalf("%d for a client's input", w.Code)
			}
			for k := range w.Header() {
				if strings.HasPrefix(strings.ToLower(k), "session-log") {
					t.Fatalf("%s reached the client", k)
				}
			}
			if seen != nil && seen.Get("X-Auth-User") == "mallory" {
				t.Fatal("a client's X-Auth-User reached the upstream")
			}
			if seen != nil && seen.Get("X-Auth-User") != "" && (p == "/login" || !strings.Contains(cookie, good)) {
				t.Fatalf("identity %q forwarded without proof (cookie %q)", seen.Get("X-Auth-User"), cookie)
			}
		}
	})
}

func signInFuzz(f *testing.F, h *Handler) string {
	r := httptest.NewRequest("POST", "/login", nil)
	rctx := context.WithValue(r.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer())
	rctx = context.WithValue(rctx, caddyhttp.VarsCtxKey, map[string]any{caddyhttp.ClientIPVarKey: "192.0.2.1"})
	w := httptest.NewRecorder()
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Session-Login", "alice")
		return nil
	})
	if err := h.ServeHTTP(w, r.WithContext(rctx), next); err != nil {
		f.Fatal(err)
	}
	for _, c := range w.Result().Cookies() {
		if c.Name == "session" {
			return c.Value
		}
	}
	f.Fatal("no session")
	return ""
}
