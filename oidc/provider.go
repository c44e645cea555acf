// Package oidc is session_auth's OpenID Connect relying party: discovery,
// the authorization request (state, nonce, PKCE), the code exchange, ID
// token and logout token verification, the refresh_token grant, the
// end-session URL, claims to an identity, the allow rules, and the
// sealing of what a session keeps of the provider's answer and of a
// sign-in under way. It knows nothing of Caddy nor of the session store:
// the gateway (package sessionauth) keeps the routes, the pages, the
// store and the minting of sessions.
package oidc

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"slices"
	"sync"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// Timing of a sign-in and of a call to the provider.
const (
	// PendingTTL is how long a sign-in may take from the button to the
	// callback.
	PendingTTL = 10 * time.Minute
	// Timeout bounds a call to the provider.
	Timeout = 10 * time.Second
	// IatSkew is how far the provider's clock may be from the gateway's.
	IatSkew = 5 * time.Minute
	// AuthTimeSkew is how much earlier than the start of a step-up the
	// provider's auth_time may be, for the two clocks' difference.
	AuthTimeSkew = time.Minute

	defaultUserClaim  = "email"
	defaultRolesClaim = "groups"
)

// Config is a provider as the relying party needs it.
type Config struct {
	Name, Issuer, ClientID, ClientSecret string
	// Scopes asked; default openid email profile.
	Scopes []string
	// UserClaim names the user (default email, which must then be
	// verified); RolesClaim lists the roles (default groups).
	UserClaim, RolesClaim string
	// With any allow_*, the user must match one of them. AllowUsers are
	// compared as UserID gives them.
	AllowUsers, AllowDomains, AllowRoles []string
	// Offline asks offline_access too: the session will be checked
	// again, or its access token renewed, with a refresh token.
	Offline bool
}

// SpanFunc starts a span named name under ctx's, ended by the func it
// returns with the call's error. Nil: no spans.
type SpanFunc func(ctx context.Context, name string) (context.Context, func(error))

// Provider is a configured OpenID provider. Discovery happens on first
// use (New opens no connection) and is retried until it succeeds.
type Provider struct {
	cfg    Config
	client *http.Client
	span   SpanFunc

	mu         sync.Mutex
	op         *gooidc.Provider
	verifier   *gooidc.IDTokenVerifier
	endSession string
	// issParam: the provider's discovery says its authorization
	// responses carry iss (RFC 9207), so a callback without one is refused.
	issParam bool
	// logoutVerifier checks back-channel logout tokens: the same keys,
	// iss and aud as ID tokens; their iat and optional exp are checked
	// against the caller's clock (VerifyLogoutToken).
	logoutVerifier *gooidc.IDTokenVerifier
}

// New is the provider of cfg, asked with client (nil: a client with
// Timeout), its token verification a span of its own when span is set.
func New(cfg Config, client *http.Client, span SpanFunc) *Provider {
	if client == nil {
		client = &http.Client{Timeout: Timeout}
	}
	return &Provider{cfg: cfg, client: client, span: span}
}

// Config is the provider's configuration.
func (p *Provider) Config() Config { return p.cfg }

// Client is the HTTP client the provider is asked with.
func (p *Provider) Client() *http.Client { return p.client }

// Discover fetches the provider's discovery document once (again after
// a failure): its endpoints and its keys.
func (p *Provider) Discover(ctx context.Context) error {
	_, err := p.discover(ctx)
	return err
}

func (p *Provider) discover(ctx context.Context) (*gooidc.Provider, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.op != nil {
		return p.op, nil
	}
	// The key set outlives this request: it keeps the client, not ctx.
	keep := gooidc.ClientContext(context.WithoutCancel(ctx), p.client)
	ctx, cancel := context.WithTimeout(keep, Timeout)
	defer cancel()
	op, err := gooidc.NewProvider(ctx, p.cfg.Issuer)
	if err != nil {
		return nil, err
	}
	var extra struct {
		EndSession string `json:"end_session_endpoint"`
		IssParam   bool   `json:"authorization_response_iss_parameter_supported"`
	}
	_ = op.Claims(&extra)
	p.op, p.endSession, p.issParam = op, extra.EndSession, extra.IssParam
	p.verifier = op.Verifier(&gooidc.Config{ClientID: p.cfg.ClientID})
	p.logoutVerifier = op.Verifier(&gooidc.Config{ClientID: p.cfg.ClientID, SkipExpiryCheck: true})
	return p.op, nil
}

// IssParam: the provider's discovery promises iss in its authorization
// responses (RFC 9207). False until discovered.
func (p *Provider) IssParam() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.issParam
}

// oauth is the OAuth 2.0 client for the callback redirectURL.
func (p *Provider) oauth(op *gooidc.Provider, redirectURL string) *oauth2.Config {
	scopes := p.cfg.Scopes
	if len(scopes) == 0 {
		scopes = []string{gooidc.ScopeOpenID, "email", "profile"}
	}
	if p.cfg.Offline && !slices.Contains(scopes, gooidc.ScopeOfflineAccess) {
		scopes = append(slices.Clone(scopes), gooidc.ScopeOfflineAccess)
	}
	return &oauth2.Config{
		ClientID: p.cfg.ClientID, ClientSecret: p.cfg.ClientSecret,
		Endpoint: op.Endpoint(), Scopes: scopes, RedirectURL: redirectURL,
	}
}

// NewVerifier is a fresh PKCE code verifier.
func NewVerifier() string { return oauth2.GenerateVerifier() }

// AuthURL is the provider's authorization URL for a sign-in: state, the
// nonce, the PKCE challenge of verifier. A step-up asks the provider to
// sign the user in again however recently it did (prompt=login,
// max_age=0). It discovers the provider first.
func (p *Provider) AuthURL(ctx context.Context, redirectURL, state, nonce, verifier string, stepUp bool) (string, error) {
	op, err := p.discover(ctx)
	if err != nil {
		return "", err
	}
	opts := []oauth2.AuthCodeOption{gooidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)}
	if stepUp {
		opts = append(opts, oauth2.SetAuthURLParam("prompt", "login"), oauth2.SetAuthURLParam("max_age", "0"))
	}
	return p.oauth(op, redirectURL).AuthCodeURL(state, opts...), nil
}

// Exchanged is the token endpoint's answer to a code, not yet checked.
type Exchanged struct {
	tok *oauth2.Token
	// RawIDToken is the ID token as the provider sent it.
	RawIDToken string
	// Refresh and Access are the refresh and access tokens; Expiry the
	// access token's, by the wall clock (zero: not said).
	Refresh, Access string
	Expiry          time.Time
}

// Exchange trades the callback's code, with the PKCE verifier, for the
// provider's tokens. It discovers the provider first (a failure then is
// ErrUnavailable's).
func (p *Provider) Exchange(ctx context.Context, redirectURL, code, verifier string) (*Exchanged, error) {
	op, err := p.discover(ctx)
	if err != nil {
		return nil, errors.Join(ErrUnavailable, err)
	}
	ctx, cancel := context.WithTimeout(gooidc.ClientContext(ctx, p.client), Timeout)
	defer cancel()
	tok, err := p.oauth(op, redirectURL).Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		return nil, err
	}
	raw, _ := tok.Extra("id_token").(string)
	return &Exchanged{tok: tok, RawIDToken: raw, Refresh: tok.RefreshToken, Access: tok.AccessToken, Expiry: tok.Expiry}, nil
}

// ErrUnavailable: the provider's discovery did not answer.
var ErrUnavailable = errors.New("provider unavailable")

// Failure says which check of a sign-in's answer failed: Kind for the
// page, the error for the log.
type Failure struct {
	Kind FailureKind
	Err  error
}

func (f *Failure) Error() string { return f.Err.Error() }

// FailureKind sorts a sign-in answer's failures by what the user is told.
type FailureKind int

const (
	FailChecks   FailureKind = iota // the ID token failed a check
	FailNonce                       // the ID token belongs to another sign-in
	FailClaims                      // the ID token's claims are unreadable
	FailUserInfo                    // UserInfo refused or named another user
)

// SignedIn is a sign-in's checked answer.
type SignedIn struct {
	Subject string
	// Claims are the ID token's, with UserInfo's where it left the user
	// claim or the email out (the signed ID token's win).
	Claims map[string]any
}

// Verify checks an exchange's answer: the ID token (signature, iss, aud,
// exp, then iat recent, azp, at_hash), its nonce against nonce, and adds
// UserInfo's claims when the ID token lacks the user claim or the email
// (OIDC Core 5.4). now is the caller's clock.
func (p *Provider) Verify(ctx context.Context, ex *Exchanged, nonce string, now time.Time) (*SignedIn, error) {
	op, err := p.discover(ctx)
	if err != nil {
		return nil, &Failure{FailChecks, err}
	}
	ctx, cancel := context.WithTimeout(gooidc.ClientContext(ctx, p.client), Timeout)
	defer cancel()
	idt, err := p.verify(ctx, p.verifier, ex.RawIDToken)
	if err != nil {
		return nil, &Failure{FailChecks, errors.New("ID token refused: " + err.Error())}
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(nonce)) != 1 {
		return nil, &Failure{FailNonce, errors.New("ID token nonce does not match")}
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return nil, &Failure{FailClaims, errors.New("ID token claims unreadable")}
	}
	if why := p.tokenChecks(idt, claims, ex.Access, now); why != "" {
		return nil, &Failure{FailChecks, errors.New(why)}
	}
	if p.needsUserInfo(claims) && op.UserInfoEndpoint() != "" {
		ui, err := op.UserInfo(ctx, oauth2.StaticTokenSource(ex.tok))
		if err != nil || ui.Subject != idt.Subject {
			return nil, &Failure{FailUserInfo, errors.New("userinfo refused: " + errString(err))}
		}
		var more map[string]any
		if ui.Claims(&more) == nil {
			for k, v := range more {
				if _, ok := claims[k]; !ok {
					claims[k] = v // the signed ID token's claims win
				}
			}
		}
	}
	return &SignedIn{Subject: idt.Subject, Claims: claims}, nil
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// verify is v.Verify as a span of its own: it may fetch the provider's
// keys.
func (p *Provider) verify(ctx context.Context, v *gooidc.IDTokenVerifier, raw string) (*gooidc.IDToken, error) {
	if p.span == nil {
		return v.Verify(ctx, raw)
	}
	ctx, end := p.span(ctx, "oidc.verify")
	t, err := v.Verify(ctx, raw)
	end(err)
	return t, err
}

// ID token checks beyond go-oidc's (signature, iss, aud, exp): iat
// recent (OIDC Core 3.1.3.7: the token was issued for this exchange, not
// replayed from long ago, nor dated ahead), azp equal to the client id
// when there are several audiences or an azp at all, and at_hash when
// the provider gave one (OIDC Core 3.2.2.9: the access token is the one
// issued with this ID token).
func (p *Provider) tokenChecks(idt *gooidc.IDToken, claims map[string]any, accessToken string, now time.Time) string {
	switch {
	case idt.IssuedAt.IsZero():
		return "ID token without iat"
	case idt.IssuedAt.After(now.Add(IatSkew)):
		return "ID token iat in the future"
	case now.Sub(idt.IssuedAt) > PendingTTL+IatSkew:
		return "ID token iat too old"
	}
	azp, hasAzp := claims["azp"]
	if (len(idt.Audience) > 1 || hasAzp) && claimString(azp) != p.cfg.ClientID {
		return "ID token azp is not this client (several audiences)"
	}
	if idt.AccessTokenHash != "" {
		if err := idt.VerifyAccessToken(accessToken); err != nil {
			return "ID token at_hash does not match the access token"
		}
	}
	return ""
}

// Refreshed is the provider's answer to a refresh_token grant.
type Refreshed struct {
	Refresh, Access string
	// Expiry is the access token's, by the wall clock (zero: not said).
	Expiry time.Time
	// IDToken is the refreshed ID token when there was one and it passed
	// the checks.
	IDToken string
	// Claims are what the provider now says of the user: the refreshed
	// ID token's, with UserInfo's where the ID token leaves them out (as
	// at the sign-in); nil when it said nothing of the user (no ID token,
	// no UserInfo endpoint).
	Claims map[string]any
}

// Refresh runs the refresh_token grant for the user subject. refused
// reports the provider's refusal (400 or 401, as invalid_grant is, or an
// answer about another user), as opposed to a provider that did not
// answer or failed (5xx, timeout).
func (p *Provider) Refresh(ctx context.Context, refreshToken, subject string) (out *Refreshed, refused bool, err error) {
	if refreshToken == "" {
		// Nothing to ask the provider with: the session cannot be
		// vouched for, which is a refusal (never a provider that does
		// not answer, whose pause would spare every session).
		return nil, true, errors.New("the session holds no refresh token (signed in before recheck or pass_access_token was set)")
	}
	op, err := p.discover(ctx)
	if err != nil {
		return nil, false, err
	}
	ctx, cancel := context.WithTimeout(gooidc.ClientContext(ctx, p.client), Timeout)
	defer cancel()
	cfg := &oauth2.Config{ClientID: p.cfg.ClientID, ClientSecret: p.cfg.ClientSecret, Endpoint: op.Endpoint()}
	cfg.Endpoint.AuthStyle = p.authStyle(op)
	// A token without an access token is never valid: the source asks.
	tok, err := cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: refreshToken}).Token()
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.Response != nil &&
			(re.Response.StatusCode == http.StatusBadRequest || re.Response.StatusCode == http.StatusUnauthorized) {
			return nil, true, err
		}
		return nil, false, err
	}
	out = &Refreshed{Refresh: tok.RefreshToken, Access: tok.AccessToken, Expiry: tok.Expiry}
	// OIDC Core 12.2: an ID token in the answer must name the same user.
	// One that fails the checks is dropped (kept out of the tokens).
	if raw, _ := tok.Extra("id_token").(string); raw != "" {
		idt, verr := p.verify(ctx, p.verifier, raw)
		if verr == nil && idt.Subject != subject {
			return nil, true, errors.New("the refreshed ID token names another user")
		}
		if verr == nil {
			_ = idt.Claims(&out.Claims)
			out.IDToken = raw
		} else {
			tok = tok.WithExtra(map[string]any{})
		}
	}
	if p.needsUserInfo(out.Claims) && op.UserInfoEndpoint() != "" {
		ui, uerr := op.UserInfo(ctx, oauth2.StaticTokenSource(tok))
		var more map[string]any
		switch {
		case uerr == nil && ui.Subject != subject:
			return nil, true, errors.New("UserInfo names another user")
		case uerr == nil && ui.Claims(&more) == nil:
			if out.Claims == nil {
				out.Claims = map[string]any{}
			}
			for k, v := range more {
				if _, ok := out.Claims[k]; !ok {
					out.Claims[k] = v // the signed ID token's claims win
				}
			}
		}
	}
	return out, false, nil
}

// authStyle is how the client authenticates at the token endpoint, from
// the provider's discovery (client_secret_basic when it says nothing, as
// RFC 8414 has it). Left to x/oauth2's detection, every refusal would be
// asked twice, once each way.
func (p *Provider) authStyle(op *gooidc.Provider) oauth2.AuthStyle {
	if p.cfg.ClientSecret == "" {
		return oauth2.AuthStyleInParams // a public client names itself in the form
	}
	var meta struct {
		Methods []string `json:"token_endpoint_auth_methods_supported"`
	}
	_ = op.Claims(&meta)
	if len(meta.Methods) > 0 && !slices.Contains(meta.Methods, "client_secret_basic") && slices.Contains(meta.Methods, "client_secret_post") {
		return oauth2.AuthStyleInParams
	}
	return oauth2.AuthStyleInHeader
}
