// Package session holds the session model, the stores that keep sessions
// (Redis and an embedded memory store) and the validity policy they share.
package session

import (
	"time"
)

// End reasons, as the SPEC names them in session JSON and audit events.
const (
	EndLogout        = "logout"
	EndRevoked       = "revoked"
	EndLimit         = "limit"
	EndIPChange      = "ip_change"
	EndCountryChange = "country_change"
	EndExpired       = "expired"
	EndIDP           = "idp" // the identity provider no longer vouches for the user
)

// Actors of a revocation, as audit events name them.
const (
	ActorSelf     = "self"
	ActorAdmin    = "admin"
	ActorUpstream = "upstream"
	ActorLimit    = "limit"
	ActorPolicy   = "policy"
	ActorLink     = "link"
	ActorIDP      = "idp"
)

// Kinds of session (SPEC section 5): a browser's, with a cookie, or an
// API token's, sent as a bearer.
const (
	KindBrowser = "browser"
	KindToken   = "token"
)

// How a session was authenticated, as X-Auth-Method says it (SPEC 4).
const (
	MethodHandoff      = "handoff"
	MethodAdmin        = "admin"
	MethodPassword     = "password"
	MethodPasswordTOTP = "password+totp"
	MethodToken        = "token"
	methodOIDCPrefix   = "oidc:"
)

// MethodOIDC is the method of a session signed in at the named provider.
func MethodOIDC(provider string) string { return methodOIDCPrefix + provider }

// Session is one signed-in browser or client of a user. The raw token is
// never part of it: only its SHA-256 is kept, so a leaked store leaks no
// usable credential.
type Session struct {
	ID        string
	UserID    string
	TokenHash [32]byte

	Email string
	Name  string
	Roles string

	IP           string // as of the last sighting
	LoginIP      string // where the session was created
	UserAgent    string
	Device       string // device name: iPhone, Mac, Windows PC, …
	DeviceType   string // mobile, tablet, desktop, bot, unknown
	Browser      string
	OS           string
	Country      string // as of the last sighting
	City         string
	Lat, Lon     float64 // as of the last sighting, when HasCoord
	HasCoord     bool
	LoginCountry string // where the session was created
	DeviceID     string // the long-lived device cookie's id, when known
	Risk         string // flags raised at sign-in (and impossible-travel) that stay with the session
	// Site is the site the session signed in on (its base_url's host, or
	// the Host a host matcher accepted), for the sessions page when several
	// sites share a store; empty when unknown (admin minting, older sessions).
	Site string

	Kind       string // KindBrowser (also when empty) or KindToken
	Label      string // a token's name, given by its user
	AuthMethod string // MethodHandoff, MethodAdmin, …
	// TokenLifetime is an API token's own lifetime from creation, which
	// replaces the policy's lifetime and idle timeout for it (SPEC 12).
	TokenLifetime time.Duration
	// Parent is the browser session that made an API token (empty for
	// one the admin API made). Revoking the parent ends the token (SPEC
	// 12); its signing out or expiring does not.
	Parent string
	// AuthenticatedAt is when the user last proved who they are: the
	// sign-in, or a later step-up. Zero reads as CreatedAt.
	AuthenticatedAt time.Time
	// StepUpIP and StepUpCountry are where the session was at its last
	// step-up (both empty before one): from then on ip-changed and
	// country-changed are measured from there, not from the sign-in.
	StepUpIP      string
	StepUpCountry string

	// Sessions signed in at an OIDC provider: its name, the user's sub
	// and the provider's session id (sid), which back-channel logout
	// names; the tokens kept for recheck and pass_access_token, sealed
	// under a key derived from the cookie's secret (a copy of the store
	// cannot open them); and when the provider last vouched for the user.
	Provider     string
	Subject      string
	ProviderSID  string
	SealedTokens string
	CheckedAt    time.Time

	// OthersActive is, after Create, how many other active sessions the
	// user had (for the new-login notice); it is not stored.
	OthersActive int

	CreatedAt    time.Time
	LastActiveAt time.Time
	EndedAt      time.Time // zero while active
	EndReason    string
}

// KindOrDefault is the session's kind, KindBrowser when not set.
func (s *Session) KindOrDefault() string {
	if s.Kind == "" {
		return KindBrowser
	}
	return s.Kind
}

// IsToken reports an API token's session.
func (s *Session) IsToken() bool { return s.Kind == KindToken }

// madeBy reports an API token that the session parent made (never when
// parent is empty).
func madeBy(s *Session, parent string) bool {
	return parent != "" && s.IsToken() && s.Parent == parent
}

// parentActive: parent (nil when there is none), the session s names as
// its Parent, is an active browser session of s's user at now. Lua twin:
// the parent check in createScript.
func parentActive(parent, s *Session, now time.Time, p Policy) bool {
	return parent != nil && parent.ID == s.Parent && parent.UserID == s.UserID && !parent.IsToken() &&
		parent.Active() && !p.Expired(parent, now)
}

// AuthenticatedOrCreated is when the user last proved who they are.
func (s *Session) AuthenticatedOrCreated() time.Time {
	if s.AuthenticatedAt.IsZero() {
		return s.CreatedAt
	}
	return s.AuthenticatedAt
}

// RiskBaseline is where the ip-changed and country-changed flags are
// measured from: the last step-up's place, else the sign-in's.
func (s *Session) RiskBaseline() (ip, country string) {
	if s.StepUpIP != "" {
		return s.StepUpIP, s.StepUpCountry
	}
	return s.LoginIP, s.LoginCountry
}

// Active reports whether the session has not been ended explicitly.
// Expiry by time is the Policy's business, see Policy.Check.
func (s *Session) Active() bool { return s.EndedAt.IsZero() }

// Clone returns a copy that the caller may change freely.
func (s *Session) Clone() *Session {
	c := *s
	return &c
}
