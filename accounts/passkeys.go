package accounts

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
)

// Passkeys (SPEC 15) are WebAuthn credentials, checked by go-webauthn:
// this file turns its ceremonies into plain values (options as JSON,
// the ceremony's state as bytes, a credential as a record the store
// keeps) and adds what the gateway asks beyond the library's answer: a
// ceremony's state works once, a sign count that goes back is its own
// error, and whether the user was verified is said.
//
// go-webauthn is pinned at v0.18.x in go.mod: before 1.0 a minor release
// may change its API (v0.18 changed how attestation types are stored and
// how a session is encoded), so a new minor is taken on purpose, never by
// an update.

// Why a passkey ceremony is refused.
var (
	// ErrPasskeyRefused: the browser's answer does not verify (origin,
	// challenge, signature, user, credential…); the caller answers 400
	// and counts it like a wrong code. The error wraps it with the
	// library's words, for the log.
	ErrPasskeyRefused = errors.New("passkey refused")
	// ErrPasskeyStateUsed: the ceremony's state was used already (or the
	// ledger could not say it was not): a replay, or a second tab.
	ErrPasskeyStateUsed = errors.New("passkey ceremony used already")
	// ErrPasskeyCloned: the assertion verified, but its sign count is not
	// above the stored one while either is above zero: two copies of the
	// key may exist. Not a sign-in; the caller logs it, with the user and
	// credential the result still names.
	ErrPasskeyCloned = errors.New("passkey sign count went back: the authenticator may be cloned")
	// ErrNoPasskey: BeginLogin for a user who has none.
	ErrNoPasskey = errors.New("no passkey for this user")
)

// PasskeyConfig is the relying party: the site.
type PasskeyConfig struct {
	// RPID is the domain passkeys are bound to (the site's host, or a
	// parent domain of it).
	RPID string
	// RPName is shown by the authenticator beside the account.
	RPName string
	// Origins are the origins pages run the ceremonies from
	// (https://gw.example.com); an answer collected elsewhere is refused.
	Origins []string
	// UserVerification is "required" or "preferred" (also when empty).
	UserVerification string
}

// PasskeyCeremonyTimeout is how long a ceremony's state is valid: the
// browser's timeout and the server's.
const PasskeyCeremonyTimeout = 5 * time.Minute

// passkeyMaxBody bounds a browser's answer: a passkey's is about 1 KiB,
// with an attestation certificate chain a few.
const passkeyMaxBody = 64 << 10

// Passkeys runs the WebAuthn ceremonies of one site.
type Passkeys struct {
	wa *webauthn.WebAuthn
	// used remembers the challenges answered, so a state works once.
	used Ledger
}

// NewPasskeys makes the relying party of cfg; used is the ledger that
// remembers ceremonies finished (the session store's Hit, shared by every
// gateway of the site).
func NewPasskeys(cfg PasskeyConfig, used Ledger) (*Passkeys, error) {
	uv := protocol.VerificationPreferred
	switch cfg.UserVerification {
	case "", "preferred":
	case "required":
		uv = protocol.VerificationRequired
	default:
		return nil, fmt.Errorf("passkeys: user_verification must be required or preferred, not %q", cfg.UserVerification)
	}
	if cfg.RPID == "" {
		return nil, errors.New("passkeys: the relying party id (the site's host) is missing")
	}
	if cfg.RPName == "" {
		cfg.RPName = cfg.RPID
	}
	timeout := webauthn.TimeoutConfig{Enforce: true, Timeout: PasskeyCeremonyTimeout, TimeoutUVD: PasskeyCeremonyTimeout}
	wa, err := webauthn.New(&webauthn.Config{
		RPID:                  cfg.RPID,
		RPDisplayName:         cfg.RPName,
		RPOrigins:             cfg.Origins,
		AttestationPreference: protocol.PreferNoAttestation,
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			UserVerification: uv,
		},
		Timeouts: webauthn.TimeoutsConfig{Login: timeout, Registration: timeout},
	})
	if err != nil {
		return nil, fmt.Errorf("passkeys: %w", err)
	}
	return &Passkeys{wa: wa, used: used}, nil
}

// PasskeyCredential is a registered passkey as the store keeps it.
type PasskeyCredential struct {
	ID         []byte
	PublicKey  []byte // COSE key
	SignCount  uint32
	AAGUID     []byte   // the authenticator's model, all zeros when it does not say
	Transports []string // "internal", "hybrid", "usb"…: hints for the browser
	// The flags of its registration, as updated by each sign-in.
	UserPresent, UserVerified, BackupEligible, BackupState bool
}

// PasskeyUser is an account as the ceremonies see it.
type PasskeyUser struct {
	// Handle is the account's WebAuthn user handle: random, 1 to 64
	// bytes, never the user id (the authenticator may show it to anyone).
	Handle []byte
	// Name (the user id or email) and DisplayName are shown by the
	// authenticator.
	Name, DisplayName string
	Passkeys          []PasskeyCredential
}

// PasskeyLogin is a passkey sign-in that verified.
type PasskeyLogin struct {
	User PasskeyUser
	// Credential is the passkey used, with its new sign count and flags:
	// the caller stores it back.
	Credential PasskeyCredential
	// UserVerified: the authenticator verified the person (PIN,
	// biometrics), so the passkey is a sign-in on its own; without it, a
	// passkey is a second factor only.
	UserVerified bool
}

// State kinds: a state begun for one ceremony is refused by another.
const (
	stateRegister     byte = 'r'
	stateLogin        byte = 'l'
	stateDiscoverable byte = 'd'
)

// BeginRegistration starts adding a passkey for u: the options for
// navigator.credentials.create (JSON) and the state FinishRegistration
// needs, which the caller keeps server-side for this browser and passes
// back once. The passkey is discoverable (a resident key, so sign-in
// needs no user name); u's passkeys are excluded, so an authenticator
// that has one says so rather than making a second.
func (p *Passkeys) BeginRegistration(u PasskeyUser) (options, state []byte, err error) {
	creation, session, err := p.wa.BeginRegistration(passkeyUser(u),
		webauthn.WithResidentKeyRequirement(protocol.ResidentKeyRequirementRequired),
		webauthn.WithExclusions(passkeyUser(u).descriptors()),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("passkey registration: %w", err)
	}
	return ceremony(stateRegister, creation, session)
}

// FinishRegistration checks the browser's answer (body, the JSON of the
// PublicKeyCredential) to BeginRegistration's state for u, and returns
// the new passkey to store. The caller also refuses an ID another
// account already has.
func (p *Passkeys) FinishRegistration(ctx context.Context, u PasskeyUser, state, body []byte, now time.Time) (PasskeyCredential, error) {
	session, err := p.useState(ctx, stateRegister, state, now)
	if err != nil {
		return PasskeyCredential{}, err
	}
	if len(body) > passkeyMaxBody {
		return PasskeyCredential{}, fmt.Errorf("%w: the answer is larger than %d bytes", ErrPasskeyRefused, passkeyMaxBody)
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(body)
	if err != nil {
		return PasskeyCredential{}, refused(err)
	}
	c, err := p.wa.CreateCredential(passkeyUser(u), session, parsed)
	if err != nil {
		return PasskeyCredential{}, refused(err)
	}
	for _, old := range u.Passkeys {
		if bytes.Equal(old.ID, c.ID) {
			return PasskeyCredential{}, fmt.Errorf("%w: this passkey is registered already", ErrPasskeyRefused)
		}
	}
	return plainCredential(*c), nil
}

// BeginDiscoverableLogin starts a sign-in with a passkey and no user
// name: the options for navigator.credentials.get (JSON) and the state.
func (p *Passkeys) BeginDiscoverableLogin() (options, state []byte, err error) {
	assertion, session, err := p.wa.BeginDiscoverableLogin()
	if err != nil {
		return nil, nil, fmt.Errorf("passkey sign-in: %w", err)
	}
	return ceremony(stateDiscoverable, assertion, session)
}

// FinishDiscoverableLogin checks the browser's answer to
// BeginDiscoverableLogin's state: lookup finds the account of the user
// handle and credential ID the authenticator gave (an error when none
// has them; the credential must be among the account's Passkeys).
func (p *Passkeys) FinishDiscoverableLogin(ctx context.Context, state, body []byte, lookup func(userHandle, credentialID []byte) (PasskeyUser, error), now time.Time) (PasskeyLogin, error) {
	session, err := p.useState(ctx, stateDiscoverable, state, now)
	if err != nil {
		return PasskeyLogin{}, err
	}
	parsed, err := parseAssertion(body)
	if err != nil {
		return PasskeyLogin{}, err
	}
	var found PasskeyUser
	_, c, err := p.wa.ValidatePasskeyLogin(func(rawID, userHandle []byte) (webauthn.User, error) {
		u, err := lookup(userHandle, rawID)
		if err != nil {
			return nil, err
		}
		found = u
		return passkeyUser(u), nil
	}, session, parsed)
	if err != nil {
		return PasskeyLogin{}, refused(err)
	}
	return loginResult(found, c, parsed)
}

// BeginLogin starts a passkey check for a known user: the second step
// after a password, or a step-up. Only u's passkeys are offered.
func (p *Passkeys) BeginLogin(u PasskeyUser) (options, state []byte, err error) {
	if len(u.Passkeys) == 0 {
		return nil, nil, ErrNoPasskey
	}
	assertion, session, err := p.wa.BeginLogin(passkeyUser(u))
	if err != nil {
		return nil, nil, fmt.Errorf("passkey check: %w", err)
	}
	return ceremony(stateLogin, assertion, session)
}

// FinishLogin checks the browser's answer to BeginLogin's state for u.
func (p *Passkeys) FinishLogin(ctx context.Context, u PasskeyUser, state, body []byte, now time.Time) (PasskeyLogin, error) {
	session, err := p.useState(ctx, stateLogin, state, now)
	if err != nil {
		return PasskeyLogin{}, err
	}
	parsed, err := parseAssertion(body)
	if err != nil {
		return PasskeyLogin{}, err
	}
	c, err := p.wa.ValidateLogin(passkeyUser(u), session, parsed)
	if err != nil {
		return PasskeyLogin{}, refused(err)
	}
	return loginResult(u, c, parsed)
}

// ceremony is the options' JSON and the state's bytes: its kind, then
// the library's session as it encodes it for keeping.
func ceremony(kind byte, options any, session *webauthn.SessionData) ([]byte, []byte, error) {
	o, err := json.Marshal(options)
	if err != nil {
		return nil, nil, err
	}
	s, err := session.MarshalMsg([]byte{kind})
	if err != nil {
		return nil, nil, err
	}
	return o, s, nil
}

// useState reads state as a ceremony of kind and marks it used: a second
// use, here or on another gateway sharing the ledger, is refused, and so
// is the first one's when the answer does not verify (a new ceremony is
// a click away).
func (p *Passkeys) useState(ctx context.Context, kind byte, state []byte, now time.Time) (webauthn.SessionData, error) {
	var s webauthn.SessionData
	if len(state) < 2 || state[0] != kind {
		return s, fmt.Errorf("%w: not the state of this ceremony", ErrPasskeyRefused)
	}
	if rest, err := s.UnmarshalMsg(state[1:]); err != nil || len(rest) != 0 || s.Challenge == "" {
		return webauthn.SessionData{}, fmt.Errorf("%w: the ceremony's state does not read", ErrPasskeyRefused)
	}
	n, _, err := p.used.Hit(ctx, "passkey:"+s.Challenge, PasskeyCeremonyTimeout, now)
	if err != nil || n > 1 {
		return webauthn.SessionData{}, ErrPasskeyStateUsed
	}
	return s, nil
}

func parseAssertion(body []byte) (*protocol.ParsedCredentialAssertionData, error) {
	if len(body) > passkeyMaxBody {
		return nil, fmt.Errorf("%w: the answer is larger than %d bytes", ErrPasskeyRefused, passkeyMaxBody)
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(body)
	if err != nil {
		return nil, refused(err)
	}
	return parsed, nil
}

// loginResult is a verified assertion's result, or ErrPasskeyCloned.
func loginResult(u PasskeyUser, c *webauthn.Credential, parsed *protocol.ParsedCredentialAssertionData) (PasskeyLogin, error) {
	res := PasskeyLogin{User: u, Credential: plainCredential(*c), UserVerified: parsed.Response.AuthenticatorData.Flags.HasUserVerified()}
	if c.Authenticator.CloneWarning {
		// The library keeps the stored count then: the caller stores nothing.
		return res, fmt.Errorf("%w (stored %d, presented %d)", ErrPasskeyCloned, c.Authenticator.SignCount, parsed.Response.AuthenticatorData.Counter)
	}
	return res, nil
}

// refused wraps the library's refusal in ErrPasskeyRefused, with its
// words and its debugging details for the log.
func refused(err error) error {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		if pe.DevInfo != "" {
			return fmt.Errorf("%w: %s (%s)", ErrPasskeyRefused, pe.Details, pe.DevInfo)
		}
		return fmt.Errorf("%w: %s", ErrPasskeyRefused, pe.Details)
	}
	return fmt.Errorf("%w: %v", ErrPasskeyRefused, err)
}

// passkeyUser is a PasskeyUser as go-webauthn's User.
type passkeyUser PasskeyUser

func (u passkeyUser) WebAuthnID() []byte          { return u.Handle }
func (u passkeyUser) WebAuthnName() string        { return u.Name }
func (u passkeyUser) WebAuthnDisplayName() string { return u.DisplayName }
func (u passkeyUser) WebAuthnCredentials() []webauthn.Credential {
	cs := make([]webauthn.Credential, len(u.Passkeys))
	for i, c := range u.Passkeys {
		cs[i] = libraryCredential(c)
	}
	return cs
}

func (u passkeyUser) descriptors() []protocol.CredentialDescriptor {
	return webauthn.Credentials(u.WebAuthnCredentials()).CredentialDescriptors()
}

func libraryCredential(c PasskeyCredential) webauthn.Credential {
	var flags protocol.AuthenticatorFlags
	for _, f := range []struct {
		set  bool
		flag protocol.AuthenticatorFlags
	}{
		{c.UserPresent, protocol.FlagUserPresent}, {c.UserVerified, protocol.FlagUserVerified},
		{c.BackupEligible, protocol.FlagBackupEligible}, {c.BackupState, protocol.FlagBackupState},
	} {
		if f.set {
			flags |= f.flag
		}
	}
	transports := make([]protocol.AuthenticatorTransport, len(c.Transports))
	for i, t := range c.Transports {
		transports[i] = protocol.AuthenticatorTransport(t)
	}
	return webauthn.Credential{
		ID:            c.ID,
		PublicKey:     c.PublicKey,
		Transport:     transports,
		Flags:         webauthn.NewCredentialFlags(flags),
		Authenticator: webauthn.Authenticator{AAGUID: c.AAGUID, SignCount: c.SignCount},
	}
}

func plainCredential(c webauthn.Credential) PasskeyCredential {
	transports := make([]string, len(c.Transport))
	for i, t := range c.Transport {
		transports[i] = string(t)
	}
	return PasskeyCredential{
		ID:             c.ID,
		PublicKey:      c.PublicKey,
		SignCount:      c.Authenticator.SignCount,
		AAGUID:         c.Authenticator.AAGUID,
		Transports:     transports,
		UserPresent:    c.Flags.UserPresent,
		UserVerified:   c.Flags.UserVerified,
		BackupEligible: c.Flags.BackupEligible,
		BackupState:    c.Flags.BackupState,
	}
}
