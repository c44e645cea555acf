package oidc

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// testOP is a small OpenID provider in process: discovery, a JWKS of
// one RSA key, a token endpoint (authorization_code with PKCE, and
// refresh_token), UserInfo, and an end-session endpoint.
type testOP struct {
	srv *httptest.Server
	key *rsa.PrivateKey

	mu sync.Mutex
	// challenge is the PKCE challenge of the last authorization request
	// (the test plays the browser and hands it over).
	challenge string
	// idClaims are the next ID token's claims (iss, aud, iat, exp are
	// filled in when absent); nil: no ID token.
	idClaims map[string]any
	userinfo map[string]any // nil: no UserInfo endpoint
	refresh  string         // the refresh token it accepts
	mode     string         // "down": 503 from the token endpoint
	discover map[string]any // more discovery fields
}

func newTestOP(t *testing.T) *testOP {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	op := &testOP{key: k, refresh: "rt-0"}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		op.mu.Lock()
		defer op.mu.Unlock()
		doc := map[string]any{
			"issuer": op.srv.URL, "authorization_endpoint": op.srv.URL + "/auth", "token_endpoint": op.srv.URL + "/token",
			"jwks_uri": op.srv.URL + "/keys", "id_token_signing_alg_values_supported": []string{"RS256"},
			"end_session_endpoint": op.srv.URL + "/end?keep=1",
		}
		if op.userinfo != nil {
			doc["userinfo_endpoint"] = op.srv.URL + "/userinfo"
		}
		for k, v := range op.discover {
			doc[k] = v
		}
		_ = json.NewEncoder(w).Encode(doc)
	})
	mux.HandleFunc("/keys", func(w http.ResponseWriter, r *http.Request) {
		pub := op.key.PublicKey
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []any{map[string]any{
			"kty": "RSA", "alg": "RS256", "use": "sig", "kid": "k1",
			"n": b64(pub.N.Bytes()), "e": b64(big.NewInt(int64(pub.E)).Bytes()),
		}}})
	})
	mux.HandleFunc("/token", func(w http.ResponseWriter, r *http.Request) {
		op.mu.Lock()
		defer op.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		refuse := func() {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"invalid_grant"}`))
		}
		switch r.PostFormValue("grant_type") {
		case "authorization_code":
			sum := sha256.Sum256([]byte(r.PostFormValue("code_verifier")))
			if r.PostFormValue("code") != "code-1" || b64(sum[:]) != op.challenge {
				refuse()
				return
			}
		case "refresh_token":
			if op.mode == "down" {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			if r.PostFormValue("refresh_token") != op.refresh {
				refuse()
				return
			}
			op.refresh += "+"
		default:
			refuse()
			return
		}
		out := map[string]any{"access_token": "at-1", "refresh_token": op.refresh, "token_type": "Bearer", "expires_in": 3600}
		if op.idClaims != nil {
			out["id_token"] = op.sign(op.idClaims)
		}
		_ = json.NewEncoder(w).Encode(out)
	})
	mux.HandleFunc("/userinfo", func(w http.ResponseWriter, r *http.Request) {
		op.mu.Lock()
		defer op.mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer at-1" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_ = json.NewEncoder(w).Encode(op.userinfo)
	})
	op.srv = httptest.NewServer(mux)
	t.Cleanup(op.srv.Close)
	return op
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// sign makes an RS256 JWT of claims, with iss, aud, iat and exp filled
// in when absent.
func (op *testOP) sign(claims map[string]any) string {
	c := map[string]any{"iss": op.srv.URL, "aud": "gw", "iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()}
	for k, v := range claims {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	head, _ := json.Marshal(map[string]any{"alg": "RS256", "kid": "k1", "typ": "JWT"})
	body, _ := json.Marshal(c)
	in := b64(head) + "." + b64(body)
	sum := sha256.Sum256([]byte(in))
	sig, err := rsa.SignPKCS1v15(rand.Reader, op.key, crypto.SHA256, sum[:])
	if err != nil {
		panic(err)
	}
	return in + "." + b64(sig)
}

func (op *testOP) set(f func(op *testOP)) {
	op.mu.Lock()
	defer op.mu.Unlock()
	f(op)
}

func (op *testOP) provider(cfg Config) *Provider {
	cfg.Issuer, cfg.ClientID = op.srv.URL, "gw"
	if cfg.Name == "" {
		cfg.Name = "corp"
	}
	return New(cfg, nil, nil)
}

const redirect = "https://app.example/.auth/callback/corp"

// signIn runs an authorization request and the exchange, the test
// playing the browser: the answer as Verify checks it.
func signIn(t *testing.T, op *testOP, p *Provider, nonce string) (*SignedIn, error) {
	t.Helper()
	ctx := context.Background()
	verifier := NewVerifier()
	to, err := p.AuthURL(ctx, redirect, "state-1", nonce, verifier, false)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(to)
	op.set(func(op *testOP) { op.challenge = u.Query().Get("code_challenge") })
	ex, err := p.Exchange(ctx, redirect, "code-1", verifier)
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	return p.Verify(ctx, ex, "n-1", time.Now())
}

func TestAuthURLCarriesStateNonceAndPKCE(t *testing.T) {
	op := newTestOP(t)
	for _, tc := range []struct {
		cfg    Config
		stepUp bool
		scope  string
	}{
		{Config{}, false, "openid email profile"},
		{Config{Offline: true}, false, "openid email profile offline_access"},
		{Config{Scopes: []string{"openid", "offline_access"}, Offline: true}, true, "openid offline_access"},
	} {
		p := op.provider(tc.cfg)
		verifier := NewVerifier()
		to, err := p.AuthURL(context.Background(), redirect, "st", "nc", verifier, tc.stepUp)
		if err != nil {
			t.Fatal(err)
		}
		u, _ := url.Parse(to)
		q := u.Query()
		sum := sha256.Sum256([]byte(verifier))
		for k, want := range map[string]string{
			"state": "st", "nonce": "nc", "client_id": "gw", "redirect_uri": redirect, "response_type": "code",
			"code_challenge": b64(sum[:]), "code_challenge_method": "S256", "scope": tc.scope,
		} {
			if got := q.Get(k); got != want {
				t.Errorf("%+v: %s = %q, want %q", tc.cfg, k, got, want)
			}
		}
		if got := q.Get("prompt") == "login" && q.Get("max_age") == "0"; got != tc.stepUp {
			t.Errorf("%+v: step-up asks to sign in again: %v, want %v", tc.cfg, got, tc.stepUp)
		}
		if !strings.HasPrefix(to, op.srv.URL+"/auth?") {
			t.Errorf("authorization URL %s", to)
		}
	}
}

// The exchange sends the PKCE verifier; the ID token's signature, nonce,
// iat, azp and at_hash are checked, each failure sorted for its page.
func TestVerifyChecksTheIDToken(t *testing.T) {
	op := newTestOP(t)
	atHash := func(at string) string { s := sha256.Sum256([]byte(at)); return b64(s[:16]) }
	for _, tc := range []struct {
		name   string
		claims map[string]any
		kind   FailureKind
		ok     bool
	}{
		{"good", map[string]any{"sub": "s1", "nonce": "n-1", "email": "a@x", "at_hash": atHash("at-1")}, 0, true},
		{"other nonce", map[string]any{"sub": "s1", "nonce": "n-2", "email": "a@x"}, FailNonce, false},
		{"no iat", map[string]any{"sub": "s1", "nonce": "n-1", "email": "a@x", "iat": nil}, FailChecks, false},
		{"old iat", map[string]any{"sub": "s1", "nonce": "n-1", "email": "a@x", "iat": time.Now().Add(-time.Hour).Unix()}, FailChecks, false},
		{"iat ahead", map[string]any{"sub": "s1", "nonce": "n-1", "email": "a@x", "iat": time.Now().Add(time.Hour).Unix()}, FailChecks, false},
		{"azp", map[string]any{"sub": "s1", "nonce": "n-1", "email": "a@x", "aud": []string{"gw", "other"}, "azp": "other"}, FailChecks, false},
		{"at_hash", map[string]any{"sub": "s1", "nonce": "n-1", "email": "a@x", "at_hash": atHash("another")}, FailChecks, false},
		{"audience", map[string]any{"sub": "s1", "nonce": "n-1", "email": "a@x", "aud": "other"}, FailChecks, false},
		{"issuer", map[string]any{"sub": "s1", "nonce": "n-1", "email": "a@x", "iss": "https://evil.example"}, FailChecks, false},
	} {
		op.set(func(op *testOP) { op.idClaims = tc.claims })
		got, err := signIn(t, op, op.provider(Config{}), "n-1")
		var f *Failure
		switch {
		case tc.ok && (err != nil || got.Subject != "s1" || got.Claims["email"] != "a@x"):
			t.Errorf("%s: %+v, %v", tc.name, got, err)
		case !tc.ok && (!errors.As(err, &f) || f.Kind != tc.kind):
			t.Errorf("%s: err %v, want a failure of kind %d", tc.name, err, tc.kind)
		}
	}
}

// A wrong PKCE verifier is refused at the token endpoint.
func TestExchangeNeedsTheVerifier(t *testing.T) {
	op := newTestOP(t)
	p := op.provider(Config{})
	to, _ := p.AuthURL(context.Background(), redirect, "st", "nc", NewVerifier(), false)
	u, _ := url.Parse(to)
	op.set(func(op *testOP) { op.challenge = u.Query().Get("code_challenge") })
	if _, err := p.Exchange(context.Background(), redirect, "code-1", NewVerifier()); err == nil {
		t.Fatal("exchanged with another verifier")
	}
}

// UserInfo fills the claims the ID token leaves out; the ID token's win,
// and a UserInfo about another user is refused.
func TestUserInfoFillsClaims(t *testing.T) {
	op := newTestOP(t)
	op.set(func(op *testOP) {
		op.idClaims = map[string]any{"sub": "s1", "nonce": "n-1", "name": "From Token"}
		op.userinfo = map[string]any{"sub": "s1", "email": "a@x", "email_verified": true, "name": "From UserInfo"}
	})
	got, err := signIn(t, op, op.provider(Config{}), "n-1")
	if err != nil || got.Claims["email"] != "a@x" || got.Claims["name"] != "From Token" {
		t.Fatalf("%+v %v", got, err)
	}
	op.set(func(op *testOP) { op.userinfo["sub"] = "s2" })
	var f *Failure
	if _, err := signIn(t, op, op.provider(Config{}), "n-1"); !errors.As(err, &f) || f.Kind != FailUserInfo {
		t.Fatalf("UserInfo of another user: %v", err)
	}
}

func TestIdentityAndAllowRules(t *testing.T) {
	p := New(Config{}, nil, nil)
	who, why := p.Identity(map[string]any{"email": "Alice@Example.com", "email_verified": "true", "preferred_username": "al", "groups": []any{"a", "b,c", "d"}})
	if why != "" || who != (Identity{UserID: "alice@example.com", Email: "Alice@Example.com", Name: "al", Roles: "a,d"}) {
		t.Fatalf("%+v %q", who, why)
	}
	if _, why := p.Identity(map[string]any{"email": "a@x"}); why != "the email address is not verified at the provider" {
		t.Fatalf("unverified: %q", why)
	}
	q := New(Config{UserClaim: "sub", RolesClaim: "roles"}, nil, nil)
	if who, why := q.Identity(map[string]any{"sub": "u1", "email": "a@x", "roles": "x, y"}); why != "" || who.Email != "" || who.Roles != "x,y" {
		t.Fatalf("sub claim: %+v %q", who, why)
	}
	if _, why := q.Identity(map[string]any{}); !strings.Contains(why, "no sub claim") {
		t.Fatalf("no user: %q", why)
	}
	if q.EmailNamesUsers() || !p.EmailNamesUsers() {
		t.Fatal("EmailNamesUsers")
	}

	rules := New(Config{AllowUsers: []string{"bob"}, AllowDomains: []string{"Corp.Example"}, AllowRoles: []string{"admins"}}, nil, nil)
	for _, tc := range []struct {
		who    Identity
		claims map[string]any
		want   bool
	}{
		{Identity{UserID: "bob"}, nil, true},
		{Identity{UserID: "carol", Email: "carol@corp.example"}, nil, true},
		{Identity{UserID: "carol", Email: "carol@other.example"}, nil, false},
		{Identity{UserID: "dan"}, map[string]any{"groups": []any{"staff", "admins"}}, true},
		{Identity{UserID: "dan"}, map[string]any{"groups": "staff"}, false},
	} {
		if got := rules.Allowed(tc.who, tc.claims); got != tc.want {
			t.Errorf("%+v %v: allowed %v", tc.who, tc.claims, got)
		}
	}
	if !p.Allowed(Identity{UserID: "anyone"}, nil) {
		t.Error("no rules: everyone")
	}
	allowed, roles := rules.Recheck("bob", "", map[string]any{"groups": []any{"x"}})
	if !allowed || roles != "x" {
		t.Errorf("recheck: %v %q", allowed, roles)
	}
	if allowed, _ := rules.Recheck("dan", "dan@corp.example", map[string]any{}); !allowed {
		t.Error("recheck keeps the sign-in's email when the claims leave it out")
	}
}

// A refresh: a new token pair and the refreshed ID token's claims; a
// refusal (400) is the provider's word, a 503 is not; an ID token about
// another user is a refusal.
func TestRefresh(t *testing.T) {
	op := newTestOP(t)
	p := op.provider(Config{ClientSecret: "s"})
	ctx := context.Background()
	op.set(func(op *testOP) { op.idClaims = map[string]any{"sub": "s1", "email": "a@x", "groups": []any{"g"}} })
	out, refused, err := p.Refresh(ctx, "rt-0", "s1")
	if err != nil || refused || out.Refresh != "rt-0+" || out.Access != "at-1" || out.IDToken == "" || out.Claims["email"] != "a@x" || out.Expiry.IsZero() {
		t.Fatalf("%+v %v %v", out, refused, err)
	}
	if _, refused, err := p.Refresh(ctx, "rt-0", "s1"); !refused || err == nil {
		t.Fatalf("a spent refresh token: refused %v, %v", refused, err)
	}
	if _, refused, err := p.Refresh(ctx, "rt-0+", "s2"); !refused || err == nil {
		t.Fatalf("another user: refused %v, %v", refused, err)
	}
	op.set(func(op *testOP) { op.mode = "down" })
	if _, refused, err := p.Refresh(ctx, "rt-0++", "s1"); refused || err == nil {
		t.Fatalf("provider down: refused %v, %v", refused, err)
	}
	if _, refused, _ := p.Refresh(ctx, "", "s1"); !refused {
		t.Fatal("no refresh token is a refusal")
	}
}

func TestVerifyLogoutToken(t *testing.T) {
	op := newTestOP(t)
	p := op.provider(Config{})
	ev := map[string]any{"http://schemas.openid.net/event/backchannel-logout": map[string]any{}}
	now := time.Now()
	lt, why, err := p.VerifyLogoutToken(context.Background(), op.sign(map[string]any{"sub": "s1", "sid": "x1", "jti": "j1", "events": ev, "exp": nil}), now)
	if err != nil || why != "" || lt != (LogoutToken{Sub: "s1", Sid: "x1", Jti: "j1"}) {
		t.Fatalf("%+v %q %v", lt, why, err)
	}
	for want, claims := range map[string]map[string]any{
		"not a back-channel logout event":       {"sub": "s1", "jti": "j"},
		"a logout token must not carry a nonce": {"sub": "s1", "jti": "j", "events": ev, "nonce": "n"},
		"neither sub nor sid":                   {"jti": "j", "events": ev},
		"no jti":                                {"sub": "s1", "events": ev},
		"iat missing or not recent":             {"sub": "s1", "jti": "j", "events": ev, "iat": now.Add(-time.Hour).Unix()},
		"expired":                               {"sub": "s1", "jti": "j", "events": ev, "exp": now.Add(-2 * time.Minute).Unix()},
	} {
		if _, why, err := p.VerifyLogoutToken(context.Background(), op.sign(claims), now); err != nil || why != want {
			t.Errorf("%v: %q %v, want %q", claims, why, err, want)
		}
	}
	if _, why, _ := p.VerifyLogoutToken(context.Background(), "not.a.token", now); !strings.HasPrefix(why, "logout token refused") {
		t.Errorf("garbage: %q", why)
	}
	down := New(Config{Issuer: "http://127.0.0.1:1", ClientID: "gw"}, nil, nil)
	if _, _, err := down.VerifyLogoutToken(context.Background(), "x", now); !errors.Is(err, ErrUnavailable) {
		t.Errorf("provider down: %v", err)
	}
}

func TestEndSessionURL(t *testing.T) {
	op := newTestOP(t)
	to, err := op.provider(Config{}).EndSessionURL(context.Background(), "idt", "https://app.example/bye")
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(to)
	q := u.Query()
	if u.Path != "/end" || q.Get("keep") != "1" || q.Get("client_id") != "gw" || q.Get("id_token_hint") != "idt" || q.Get("post_logout_redirect_uri") != "https://app.example/bye" {
		t.Fatalf("%s", to)
	}
	op.set(func(op *testOP) { op.discover = map[string]any{"end_session_endpoint": ""} })
	if _, err := op.provider(Config{}).EndSessionURL(context.Background(), "", "/"); !errors.Is(err, ErrNoEndSession) {
		t.Fatalf("no endpoint: %v", err)
	}
}

func TestIssParam(t *testing.T) {
	op := newTestOP(t)
	op.set(func(op *testOP) { op.discover = map[string]any{"authorization_response_iss_parameter_supported": true} })
	p := op.provider(Config{})
	if p.IssParam() {
		t.Fatal("known before discovery")
	}
	if err := p.Discover(context.Background()); err != nil || !p.IssParam() {
		t.Fatalf("%v %v", err, p.IssParam())
	}
}

// A state is made under the ring's key and read back with its time; the
// pending record opens only for its own state.
func TestStateAndPendingSealing(t *testing.T) {
	k1 := StateKey{Made: time.Now(), Key: make([]byte, 32)}
	k2 := StateKey{Made: time.Now(), Key: []byte(strings.Repeat("k", 32))}
	made := time.UnixMilli(1_800_000_000_000)
	st := NewState(k1.Key, made)
	if at, ok := StateMadeAt([]StateKey{k2, k1}, st); !ok || !at.Equal(made) {
		t.Fatalf("%v %v", at, ok)
	}
	if _, ok := StateMadeAt([]StateKey{k2}, st); ok {
		t.Fatal("another key made it")
	}
	if _, ok := StateMadeAt([]StateKey{k1}, st[:len(st)-2]+"AA"); ok {
		t.Fatal("a forged MAC")
	}
	ps := Pending{Provider: "corp", State: st, Nonce: RandomString(), Verifier: NewVerifier(), Next: "/a?b=<c>&d"}
	sealed, err := SealPending(k1.Key, ps)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := OpenPending([]StateKey{k2, k1}, sealed, st); err != nil || got != ps {
		t.Fatalf("%+v %v", got, err)
	}
	if _, err := OpenPending([]StateKey{k1}, sealed, NewState(k1.Key, made)); err == nil {
		t.Fatal("opened for another state")
	}
}

func TestCheckDiscovery(t *testing.T) {
	op := newTestOP(t)
	ctx := context.Background()
	client := &http.Client{Timeout: 5 * time.Second}
	if err := CheckDiscovery(ctx, client, op.srv.URL); err != nil {
		t.Fatal(err)
	}
	if err := CheckDiscovery(ctx, client, op.srv.URL+"/"); err == nil || !strings.HasPrefix(err.Error(), "wrong issuer") {
		t.Errorf("issuer with a slash: %v", err)
	}
	if err := CheckDiscovery(ctx, client, op.srv.URL+"/nothing"); err == nil || err.Error() != "the discovery URL answered HTTP 404 Not Found" {
		t.Errorf("404: %v", err)
	}
	op.set(func(op *testOP) { op.discover = map[string]any{"token_endpoint": ""} })
	if err := CheckDiscovery(ctx, client, op.srv.URL); err == nil || err.Error() != "the discovery document has no token_endpoint" {
		t.Errorf("no token endpoint: %v", err)
	}
	var ne *NetworkError
	if err := CheckDiscovery(ctx, client, "http://127.0.0.1:1"); !errors.As(err, &ne) {
		t.Errorf("nothing listening: %v", err)
	}
}
