package oidc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
)

// OIDC Back-Channel Logout 1.0: the provider POSTs a signed logout_token
// that names its user (sub) and/or its session (sid).
const (
	backchannelEvent = "http://schemas.openid.net/event/backchannel-logout"
	// LogoutTokenMaxAge: a logout token is acted on only this soon after
	// it was issued (and its jti once in that time), so that a copy
	// cannot end sessions signed in later.
	LogoutTokenMaxAge = 5 * time.Minute
	// LogoutTokenSkew is how far the provider's clock may be off.
	LogoutTokenSkew = time.Minute
)

// LogoutToken is what a verified logout token says.
type LogoutToken struct {
	Sub, Sid, Jti string
}

// VerifyLogoutToken checks a logout token (signature, iss, aud, iat,
// exp when given, the back-channel event, sub and/or sid, no nonce, a
// jti) against now; why says what failed in the token, err what failed
// here (the provider's discovery: ErrUnavailable). The jti's single use
// is the caller's to check.
func (p *Provider) VerifyLogoutToken(ctx context.Context, raw string, now time.Time) (lt LogoutToken, why string, err error) {
	if _, err := p.discover(ctx); err != nil {
		return lt, "", fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	ctx, cancel := context.WithTimeout(gooidc.ClientContext(ctx, p.client), Timeout)
	defer cancel()
	tok, err := p.verify(ctx, p.logoutVerifier, raw)
	if err != nil {
		return lt, "logout token refused: " + err.Error(), nil
	}
	var claims struct {
		Sid    string                     `json:"sid"`
		Jti    string                     `json:"jti"`
		Nonce  *json.RawMessage           `json:"nonce"`
		Events map[string]json.RawMessage `json:"events"`
	}
	if err := tok.Claims(&claims); err != nil {
		return lt, "logout token claims unreadable", nil
	}
	switch ev, ok := claims.Events[backchannelEvent]; {
	case !ok || len(ev) == 0 || ev[0] != '{':
		return lt, "not a back-channel logout event", nil
	case claims.Nonce != nil:
		return lt, "a logout token must not carry a nonce", nil
	case tok.Subject == "" && claims.Sid == "":
		return lt, "neither sub nor sid", nil
	case claims.Jti == "" || len(claims.Jti) > 256:
		return lt, "no jti", nil
	case tok.IssuedAt.IsZero() || tok.IssuedAt.After(now.Add(LogoutTokenSkew)) || now.Sub(tok.IssuedAt) > LogoutTokenMaxAge:
		return lt, "iat missing or not recent", nil
	case !tok.Expiry.IsZero() && !now.Before(tok.Expiry.Add(LogoutTokenSkew)):
		return lt, "expired", nil
	case len(tok.Subject) > 256 || len(claims.Sid) > 256:
		return lt, "sub or sid too long", nil
	}
	return LogoutToken{Sub: tok.Subject, Sid: claims.Sid, Jti: claims.Jti}, "", nil
}

// ErrNoEndSession: the provider has no end_session_endpoint.
var ErrNoEndSession = errors.New("the provider has no end_session_endpoint")

// EndSessionURL is where a browser signs out at the provider too (OpenID
// Connect RP-Initiated Logout 1.0): its end_session_endpoint with the ID
// token as a hint (when given), the client id, and postLogout, which the
// provider must know for this client.
func (p *Provider) EndSessionURL(ctx context.Context, idTokenHint, postLogout string) (string, error) {
	if _, err := p.discover(ctx); err != nil {
		return "", err
	}
	p.mu.Lock()
	end := p.endSession
	p.mu.Unlock()
	if end == "" {
		return "", ErrNoEndSession
	}
	u, err := url.Parse(end)
	if err != nil {
		return "", err
	}
	q := u.Query()
	q.Set("client_id", p.cfg.ClientID)
	q.Set("post_logout_redirect_uri", postLogout)
	if idTokenHint != "" {
		q.Set("id_token_hint", idTokenHint)
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}
