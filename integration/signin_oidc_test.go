package integration

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/text/language"

	"github.com/sessionauth/caddy-sessionauth/internal/redisserver"
)

// testOP is zitadel's example OpenID provider, in this process on
// 127.0.0.1, with users of the tests' own, a client for the gateway and
// a signing key the test can rotate. tamper, when set, rewrites the ID
// token the token endpoint hands out (re-signed with the provider's own
// key), to forge what a provider must never send.
type testOP struct {
	issuer string
	store  *opStorage
	srv    *http.Server

	mu     sync.Mutex
	tamper func(claims map[string]any)
	// tokenDown makes the token endpoint answer 503, as a provider in
	// trouble does; expiresIn, when not zero, replaces the expires_in of
	// its answers (seconds), for access tokens that expire during a test.
	tokenDown atomic.Bool
	expiresIn atomic.Int64
	// issParam makes discovery promise RFC 9207's iss on authorization
	// responses; callbackIss, when set, is put as iss on the redirect to
	// the gateway's callback (the example provider sends none).
	issParam    atomic.Bool
	callbackIss atomic.Pointer[string]
}

// opUsers: alice and eve (verified addresses in two domains) and uv,
// whose address is not verified. Every password is "verysecure".
type opUsers struct{}

var testOPUsers = map[string]*storage.User{
	"id-alice": {ID: "id-alice", Username: "alice", Password: "verysecure", FirstName: "Alice", LastName: "Example", Email: "alice@example.com", EmailVerified: true, PreferredLanguage: language.English},
	"id-eve":   {ID: "id-eve", Username: "eve", Password: "verysecure", FirstName: "Eve", LastName: "Other", Email: "eve@other.example", EmailVerified: true, PreferredLanguage: language.English},
	"id-uv":    {ID: "id-uv", Username: "uv", Password: "verysecure", FirstName: "Un", LastName: "Verified", Email: "uv@example.com", EmailVerified: false, PreferredLanguage: language.English},
}

func (opUsers) GetUserByID(id string) *storage.User { return testOPUsers[id] }
func (opUsers) GetUserByUsername(name string) *storage.User {
	for _, u := range testOPUsers {
		if u.Username == name {
			return u
		}
	}
	return nil
}
func (opUsers) ExampleClientID() string { return "service" }

// opKey is the provider's signing key, which the test rotates.
type opKey struct {
	id  string
	key *rsa.PrivateKey
}

func (k opKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k opKey) Key() any                                    { return k.key }
func (k opKey) ID() string                                  { return k.id }

type opPublicKey struct{ opKey }

func (k opPublicKey) Algorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k opPublicKey) Use() string                        { return "sig" }
func (k opPublicKey) Key() any                           { return &k.key.PublicKey }

// opStorage is the example's in-memory storage with a key of the test's.
type opStorage struct {
	*storage.Storage
	mu  sync.Mutex
	key opKey
	// extraClaims are more claims per user ID, in UserInfo and the ID
	// token alike, as a provider with groups would send them.
	extraClaims map[string]map[string]any
	// refreshAsked counts the refresh_token grants that reached the
	// storage; with refuseRefresh set they are refused (invalid_grant),
	// as a provider refuses a user it disabled or signed out.
	refreshAsked  atomic.Int32
	refuseRefresh atomic.Bool
}

func (s *opStorage) TokenRequestByRefreshToken(ctx context.Context, token string) (op.RefreshTokenRequest, error) {
	s.refreshAsked.Add(1)
	if s.refuseRefresh.Load() {
		return nil, errors.New("the user was signed out at the provider")
	}
	return s.Storage.TokenRequestByRefreshToken(ctx, token)
}

func newOPKey(t *testing.T, id string) opKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return opKey{id: id, key: k}
}

func (s *opStorage) current() opKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.key
}

func (s *opStorage) rotate(k opKey) {
	s.mu.Lock()
	s.key = k
	s.mu.Unlock()
}

func (s *opStorage) SigningKey(context.Context) (op.SigningKey, error) { return s.current(), nil }
func (s *opStorage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}
func (s *opStorage) KeySet(context.Context) ([]op.Key, error) {
	return []op.Key{opPublicKey{s.current()}}, nil
}

// startOP starts a provider whose client "gateway" (secret "secret") may
// redirect to each of redirectURIs.
func startOP(t *testing.T, redirectURIs ...string) *testOP {
	t.Helper()
	return startOPOn(t, "127.0.0.1", redirectURIs...)
}

// startOPOn is startOP with the issuer named by host (listening on
// 127.0.0.1): "localhost" is another site than 127.0.0.1 to a browser,
// as a real provider is.
func startOPOn(t *testing.T, host string, redirectURIs ...string) *testOP {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := &testOP{issuer: "http://" + net.JoinHostPort(host, fmt.Sprint(l.Addr().(*net.TCPAddr).Port)) + "/"}
	clients := map[string]*storage.Client{"gateway": storage.WebClient("gateway", "secret", redirectURIs...)}
	o.store = &opStorage{Storage: storage.NewStorageWithClients(opUsers{}, clients), key: newOPKey(t, "key-1")}
	router := exampleop.SetupServer(o.issuer, o.store, nil, false)
	o.srv = &http.Server{Handler: o.wrap(router), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = o.srv.Serve(l) }()
	t.Cleanup(func() { _ = o.srv.Close() })
	return o
}

func (o *testOP) setTamper(f func(map[string]any)) {
	o.mu.Lock()
	o.tamper = f
	o.mu.Unlock()
}

// wrap lets tamper rewrite the token endpoint's ID token, tokenDown
// fail it and expiresIn shorten its tokens' lives.
func (o *testOP) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.mu.Lock()
		tamper := o.tamper
		o.mu.Unlock()
		if !strings.HasSuffix(r.URL.Path, "/token") {
			if o.issParam.Load() || o.callbackIss.Load() != nil {
				o.rewriteIss(next, w, r)
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		if o.tokenDown.Load() {
			http.Error(w, "temporarily unavailable", http.StatusServiceUnavailable)
			return
		}
		expiresIn := o.expiresIn.Load()
		if tamper == nil && expiresIn == 0 {
			next.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		var body map[string]any
		if json.Unmarshal(rec.Body.Bytes(), &body) == nil {
			if raw, ok := body["id_token"].(string); ok && tamper != nil {
				body["id_token"] = o.resign(raw, tamper)
			}
			if _, ok := body["expires_in"]; ok && expiresIn != 0 {
				body["expires_in"] = expiresIn
			}
		}
		out, _ := json.Marshal(body)
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.Header().Del("Content-Length")
		w.WriteHeader(rec.Code)
		_, _ = w.Write(out)
	})
}

// rewriteIss adds RFC 9207's promise to discovery and its iss to the
// redirect to the gateway's callback, as issParam and callbackIss say.
func (o *testOP) rewriteIss(next http.Handler, w http.ResponseWriter, r *http.Request) {
	rec := httptest.NewRecorder()
	next.ServeHTTP(rec, r)
	body := rec.Body.Bytes()
	if strings.HasSuffix(r.URL.Path, "/.well-known/openid-configuration") && o.issParam.Load() {
		var doc map[string]any
		if json.Unmarshal(body, &doc) == nil {
			doc["authorization_response_iss_parameter_supported"] = true
			body, _ = json.Marshal(doc)
		}
	}
	if loc, err := url.Parse(rec.Header().Get("Location")); err == nil && strings.Contains(loc.Path, "/.auth/callback/") {
		if iss := o.callbackIss.Load(); iss != nil {
			q := loc.Query()
			q.Set("iss", *iss)
			loc.RawQuery = q.Encode()
			rec.Header().Set("Location", loc.String())
		}
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.Header().Del("Content-Length")
	w.WriteHeader(rec.Code)
	_, _ = w.Write(body)
}

// resign changes an ID token's claims and signs it again with the
// provider's key, as only the provider could.
func (o *testOP) resign(raw string, tamper func(map[string]any)) string {
	jws, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		return raw
	}
	var claims map[string]any
	if json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &claims) != nil {
		return raw
	}
	tamper(claims)
	return signJWT(o.store.current(), claims, "JWT")
}

func signJWT(k opKey, claims map[string]any, typ string) string {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: k.key, KeyID: k.id}},
		(&jose.SignerOptions{}).WithType(jose.ContentType(typ)))
	if err != nil {
		panic(err)
	}
	payload, _ := json.Marshal(claims)
	jws, err := signer.Sign(payload)
	if err != nil {
		panic(err)
	}
	out, _ := jws.CompactSerialize()
	return out
}

// oidcSite is a site on port with one provider block per (name, issuer)
// pair; more goes inside sign_in.
func oidcSite(port int, storeLine, signIn string) string {
	return strings.Replace(site(storeLine+"\nsign_in {\n"+signIn+"\n}"), "{PORT}", fmt.Sprint(port), -1)
}

func providerBlock(name, issuer, extra string) string {
	return "oidc " + name + " {\n issuer " + issuer + "\n client_id gateway\n client_secret secret\n label \"" + strings.ToUpper(name[:1]) + name[1:] + "\"\n" + extra + "\n}\n"
}

// loadOIDCCaddy loads text (its port already filled in) and answers the
// gateway on that port.
func loadOIDCCaddy(t *testing.T, port int, text string) (*gateway, *testUpstream) {
	up := newUpstream(t)
	g := loadCaddy(t, text, up)
	g.port, g.base = port, fmt.Sprintf("http://127.0.0.1:%d", port)
	return g, up
}

var loginFormID = regexp.MustCompile(`name="id" value="([^"]+)"`)

// oidcSignIn clicks "Sign in with <provider>" and signs in at the
// provider as user; it answers the gateway's callback answer and the
// callback URL the provider sent the browser to.
func (b *browser) oidcSignIn(provider, user, next string) (page, string) {
	b.t.Helper()
	return b.oidcSignInFrom("/.auth/sign-in/"+provider+"?next="+url.QueryEscape(next), user)
}

// oidcSignInFrom is oidcSignIn from the gateway's URL target that starts
// it (a provider's button, a step-up).
func (b *browser) oidcSignInFrom(target, user string) (page, string) {
	b.t.Helper()
	var callback string
	for hop := 0; hop < 10; hop++ {
		p := b.get(target)
		if strings.Contains(target, "/.auth/callback/") {
			return p, callback
		}
		switch {
		case p.status >= 300 && p.status < 400:
			loc, err := url.Parse(p.header.Get("Location"))
			if err != nil {
				b.t.Fatal(err)
			}
			if !loc.IsAbs() {
				base, _ := url.Parse(b.base)
				if strings.HasPrefix(target, "http") {
					base, _ = url.Parse(target)
				}
				loc = base.ResolveReference(loc)
			}
			target = loc.String()
			if strings.Contains(target, "/.auth/callback/") {
				callback = target
			}
		case loginFormID.MatchString(p.body):
			// The provider's login form.
			id := loginFormID.FindStringSubmatch(p.body)[1]
			u, _ := url.Parse(target)
			u.Path, u.RawQuery = "/login/username", ""
			res := b.post(u.String(), url.Values{"id": {id}, "username": {user}, "password": {"verysecure"}})
			if res.status != http.StatusFound {
				b.t.Fatalf("provider login: %d %s", res.status, res.body)
			}
			loc, _ := url.Parse(res.header.Get("Location"))
			target = u.ResolveReference(loc).String()
		default:
			return p, callback
		}
	}
	b.t.Fatalf("too many redirects signing in from %s", target)
	return page{}, ""
}

func TestOIDCFirstSignIn(t *testing.T) {
	stores(t, func(t *testing.T, storeLine string, _ *redisserver.Server) {
		port := redisserver.FreePort(t)
		o := startOP(t, fmt.Sprintf("http://127.0.0.1:%d/.auth/callback/corp", port))
		g, _ := loadOIDCCaddy(t, port, oidcSite(port, storeLine, providerBlock("corp", o.issuer, "")))
		b := newBrowser(t, g.base)

		// One provider and no accounts: the sign-in page goes straight there.
		p := b.get("/app")
		if p.status != http.StatusSeeOther || !strings.HasPrefix(p.header.Get("Location"), "/.auth/sign-in?next=") {
			t.Fatalf("unauthenticated: %d %q", p.status, p.header.Get("Location"))
		}
		p = b.get(p.header.Get("Location"))
		if p.status != http.StatusSeeOther || p.header.Get("Location") != "/.auth/sign-in/corp?next=%2Fapp" {
			t.Fatalf("sign-in page with one provider: %d %q", p.status, p.header.Get("Location"))
		}
		start := b.get("/.auth/sign-in/corp?next=%2Fapp")
		auth, _ := url.Parse(start.header.Get("Location"))
		q := auth.Query()
		if start.status != http.StatusSeeOther || !strings.HasPrefix(auth.String(), strings.TrimSuffix(o.issuer, "/")) ||
			q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || q.Get("state") == "" || q.Get("nonce") == "" ||
			q.Get("redirect_uri") != g.base+"/.auth/callback/corp" {
			t.Fatalf("to the provider: %d %s", start.status, auth)
		}
		var bound *http.Cookie
		for _, c := range (&http.Response{Header: start.header}).Cookies() {
			if c.Name == "session_oidc" {
				bound = c
			}
		}
		if bound == nil || !bound.HttpOnly || bound.MaxAge <= 0 || bound.MaxAge > 600 {
			t.Fatalf("binding cookie: %+v", bound)
		}

		p, _ = b.oidcSignIn("corp", "alice", "/app")
		if p.status != http.StatusSeeOther || p.header.Get("Location") != "/app" {
			t.Fatalf("callback: %d %q %s", p.status, p.header.Get("Location"), p.body)
		}
		h := b.upstreamSees("/app")
		if h["X-Auth-User"] != "alice@example.com" || h["X-Auth-Method"] != "oidc:corp" || h["X-Auth-Email"] != "alice@example.com" || h["X-Auth-Name"] != "Alice Example" {
			t.Fatalf("upstream saw %v", h)
		}
		code, body := g.adminDo("GET", "/session-auth/users/alice@example.com/sessions", "")
		if code != 200 || !strings.Contains(body, `"auth_method":"oidc:corp"`) {
			t.Fatalf("admin: %d %s", code, body)
		}
	})
}

func TestOIDCSecondProvider(t *testing.T) {
	port := redisserver.FreePort(t)
	cb := func(n string) string { return fmt.Sprintf("http://127.0.0.1:%d/.auth/callback/%s", port, n) }
	corp, partner := startOP(t, cb("corp")), startOP(t, cb("partner"))
	g, _ := loadOIDCCaddy(t, port, oidcSite(port, "store memory",
		providerBlock("corp", corp.issuer, "")+providerBlock("partner", partner.issuer, "user_claim preferred_username")))
	b := newBrowser(t, g.base)
	p := b.get("/.auth/sign-in?next=%2Fx")
	for _, want := range []string{`href="/.auth/sign-in/corp?next=%2fx"`, "Sign in with Corp", `href="/.auth/sign-in/partner?next=%2fx"`, "Sign in with Partner"} {
		if !strings.Contains(strings.ToLower(p.body), strings.ToLower(want)) {
			t.Fatalf("sign-in page lacks %q:\n%s", want, p.body)
		}
	}
	if strings.Contains(p.body, `name="password"`) {
		t.Fatal("a password form without accounts")
	}
	if p, _ = b.oidcSignIn("partner", "eve", "/x"); p.status != http.StatusSeeOther {
		t.Fatalf("partner: %d %s", p.status, p.body)
	}
	if h := b.upstreamSees("/x"); h["X-Auth-User"] != "eve" || h["X-Auth-Method"] != "oidc:partner" {
		t.Fatalf("upstream saw %v", h)
	}
	other := newBrowser(t, g.base)
	if p, _ = other.oidcSignIn("corp", "alice", "/x"); p.status != http.StatusSeeOther {
		t.Fatalf("corp: %d %s", p.status, p.body)
	}
	if h := other.upstreamSees("/x"); h["X-Auth-User"] != "alice@example.com" || h["X-Auth-Method"] != "oidc:corp" {
		t.Fatalf("upstream saw %v", h)
	}
}

// The callback's refusals: each a page in words, never a session.
func TestOIDCCallbackRefusals(t *testing.T) {
	port := redisserver.FreePort(t)
	o := startOP(t, fmt.Sprintf("http://127.0.0.1:%d/.auth/callback/corp", port))
	g, _ := loadOIDCCaddy(t, port, oidcSite(port, "store memory", providerBlock("corp", o.issuer, "allow_domains example.com")))

	refused := func(t *testing.T, b *browser, p page, status int, words string) {
		t.Helper()
		if p.status != status || !strings.Contains(p.body, words) || !strings.Contains(p.header.Get("Content-Type"), "text/html") {
			t.Fatalf("want %d with %q, got %d:\n%s", status, words, p.status, p.body)
		}
		if b.get("/app").status != http.StatusSeeOther {
			t.Fatal("signed in after a refusal")
		}
	}

	t.Run("WrongState", func(t *testing.T) {
		b := newBrowser(t, g.base)
		b.get("/.auth/sign-in/corp")
		refused(t, b, b.get("/.auth/callback/corp?code=x&state=forged"), http.StatusBadRequest, "has expired or was already used")
		refused(t, b, b.get("/.auth/callback/corp"), http.StatusBadRequest, "has expired or was already used")
	})
	t.Run("ReplayedCode", func(t *testing.T) {
		b := newBrowser(t, g.base)
		p, callback := b.oidcSignIn("corp", "alice", "/")
		if p.status != http.StatusSeeOther || callback == "" {
			t.Fatalf("first use: %d %s", p.status, p.body)
		}
		again := newBrowser(t, g.base)
		again.http.Jar = b.http.Jar // the same browser, cookies and all
		p = again.get(callback)
		if p.status != http.StatusBadRequest || !strings.Contains(p.body, "already used") {
			t.Fatalf("replayed callback: %d %s", p.status, p.body)
		}
	})
	t.Run("OtherBrowser", func(t *testing.T) {
		// A callback URL carried to another browser lacks the cookie.
		b := newBrowser(t, g.base)
		start := b.get("/.auth/sign-in/corp")
		auth, _ := url.Parse(start.header.Get("Location"))
		thief := newBrowser(t, g.base)
		refused(t, thief, thief.get("/.auth/callback/corp?code=x&state="+url.QueryEscape(auth.Query().Get("state"))), http.StatusBadRequest, "another browser")
	})
	t.Run("Cancelled", func(t *testing.T) {
		b := newBrowser(t, g.base)
		start := b.get("/.auth/sign-in/corp")
		auth, _ := url.Parse(start.header.Get("Location"))
		refused(t, b, b.get("/.auth/callback/corp?error=access_denied&state="+url.QueryEscape(auth.Query().Get("state"))), http.StatusUnauthorized, "The sign-in with Corp was cancelled.")
	})
	t.Run("WrongNonce", func(t *testing.T) {
		o.setTamper(func(c map[string]any) { c["nonce"] = "another-sign-in" })
		defer o.setTamper(nil)
		b := newBrowser(t, g.base)
		p, _ := b.oidcSignIn("corp", "alice", "/")
		refused(t, b, p, http.StatusBadRequest, "belongs to another sign-in")
	})
	t.Run("ExpiredIDToken", func(t *testing.T) {
		o.setTamper(func(c map[string]any) { c["exp"] = time.Now().Add(-time.Hour).Unix() })
		defer o.setTamper(nil)
		b := newBrowser(t, g.base)
		p, _ := b.oidcSignIn("corp", "alice", "/")
		refused(t, b, p, http.StatusBadRequest, "failed the checks")
	})
	t.Run("WrongAudience", func(t *testing.T) {
		o.setTamper(func(c map[string]any) { c["aud"] = []string{"another-client"} })
		defer o.setTamper(nil)
		b := newBrowser(t, g.base)
		p, _ := b.oidcSignIn("corp", "alice", "/")
		refused(t, b, p, http.StatusBadRequest, "failed the checks")
	})
	t.Run("UnverifiedEmail", func(t *testing.T) {
		b := newBrowser(t, g.base)
		p, _ := b.oidcSignIn("corp", "uv", "/")
		refused(t, b, p, http.StatusForbidden, "the email address is not verified")
	})
	t.Run("NotAllowed", func(t *testing.T) {
		b := newBrowser(t, g.base)
		p, _ := b.oidcSignIn("corp", "eve", "/")
		refused(t, b, p, http.StatusForbidden, "This account is not allowed here.")
		_, body := g.adminDo("GET", "/session-auth/users/eve@other.example/events", "")
		if !strings.Contains(body, `"type":"login_failed"`) || !strings.Contains(body, `"reason":"not_allowed"`) {
			t.Fatalf("eve's events: %s", body)
		}
	})
}

// The provider signs with a new key: the gateway fetches the JWKS again
// for the unknown kid and the sign-in works.
func TestOIDCKeyRotation(t *testing.T) {
	port := redisserver.FreePort(t)
	o := startOP(t, fmt.Sprintf("http://127.0.0.1:%d/.auth/callback/corp", port))
	g, _ := loadOIDCCaddy(t, port, oidcSite(port, "store memory", providerBlock("corp", o.issuer, "")))
	if p, _ := newBrowser(t, g.base).oidcSignIn("corp", "alice", "/"); p.status != http.StatusSeeOther {
		t.Fatalf("before rotation: %d %s", p.status, p.body)
	}
	o.store.rotate(newOPKey(t, "key-2"))
	b := newBrowser(t, g.base)
	if p, _ := b.oidcSignIn("corp", "alice", "/"); p.status != http.StatusSeeOther {
		t.Fatalf("after rotation: %d %s", p.status, p.body)
	}
	if h := b.upstreamSees("/"); h["X-Auth-User"] != "alice@example.com" {
		t.Fatalf("upstream saw %v", h)
	}
}

// A provider that does not answer: a page that says so, not a 5xx.
func TestOIDCProviderDown(t *testing.T) {
	port := redisserver.FreePort(t)
	dead := fmt.Sprintf("http://127.0.0.1:%d/", redisserver.FreePort(t))
	g, _ := loadOIDCCaddy(t, port, oidcSite(port, "store memory", providerBlock("corp", dead, "")))
	b := newBrowser(t, g.base)
	p := b.get("/.auth/sign-in/corp")
	if p.status >= 500 || !strings.Contains(p.body, "Signing in with Corp is unavailable at the moment") || !strings.Contains(p.header.Get("Content-Type"), "text/html") {
		t.Fatalf("provider down: %d %s", p.status, p.body)
	}
	if p := b.get("/.auth/callback/corp?code=x&state=y"); p.status >= 500 {
		t.Fatalf("callback with the provider down: %d", p.status)
	}
}

var formAction = regexp.MustCompile(`<form method="post" action="([^"]*)"`)

// The page of a provider that does not answer is shown at the button's
// address, which takes no form: the accounts form under it posts to the
// sign-in endpoint, and signs in.
func TestOIDCProblemPageAccountsForm(t *testing.T) {
	port := redisserver.FreePort(t)
	dead := fmt.Sprintf("http://127.0.0.1:%d/", redisserver.FreePort(t))
	g, _ := loadOIDCCaddy(t, port, oidcSite(port, "store memory", providerBlock("corp", dead, "")+accountsBlock(t)))
	b := newBrowser(t, g.base)
	p := b.get("/.auth/sign-in/corp")
	action := formAction.FindStringSubmatch(p.body)
	if !strings.Contains(p.body, "unavailable at the moment") || action == nil || action[1] != "/.auth/sign-in" {
		t.Fatalf("the problem page's form does not post to the sign-in endpoint: %d\n%s", p.status, p.body)
	}
	p = b.post(action[1], url.Values{"csrf": {p.field("csrf")}, "next": {p.field("next")}, "username": {"alice"}, "password": {"demo"}})
	if p.status != http.StatusSeeOther {
		t.Fatalf("the problem page's form: %d %s", p.status, p.body)
	}
	if h := b.upstreamSees("/"); h["X-Auth-User"] != "alice" || h["X-Auth-Method"] != "password" {
		t.Fatalf("upstream saw %v", h)
	}
}

// With cookie same_site strict the callback does not redirect: a browser
// would withhold the new cookie from the redirect (the navigation came
// from the provider's site). It answers a page that moves on by itself,
// so that the next request is one of the site's own.
func TestOIDCStrictCookieLandsThroughAPage(t *testing.T) {
	port := redisserver.FreePort(t)
	o := startOP(t, fmt.Sprintf("http://127.0.0.1:%d/.auth/callback/corp", port))
	g, _ := loadOIDCCaddy(t, port, oidcSite(port, "store memory\ncookie {\n\tsame_site strict\n}", providerBlock("corp", o.issuer, "")))
	b := newBrowser(t, g.base)
	p, _ := b.oidcSignIn("corp", "alice", "/app?x=1&y=2")
	if p.status != http.StatusOK || !strings.HasPrefix(p.header.Get("Content-Type"), "text/html") ||
		!strings.Contains(p.body, `<meta http-equiv="refresh" content="0;url=/app?x=1&amp;y=2">`) || !strings.Contains(p.body, `<a href="/app?x=1&amp;y=2">Continue</a>`) {
		t.Fatalf("callback with same_site strict: %d %q\n%s", p.status, p.header.Get("Content-Type"), p.body)
	}
	var session *http.Cookie
	for _, c := range (&http.Response{Header: p.header}).Cookies() {
		if c.Name == "session" {
			session = c
		}
	}
	if session == nil || session.SameSite != http.SameSiteStrictMode {
		t.Fatalf("the session cookie: %+v", session)
	}
	if h := b.upstreamSees("/app"); h["X-Auth-User"] != "alice@example.com" || h["X-Auth-Method"] != "oidc:corp" {
		t.Fatalf("upstream saw %v", h)
	}
}
