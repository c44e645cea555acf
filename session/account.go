package session

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Accounts that people manage themselves (SPEC 15) live in the store
// beside the sessions: the stored accounts (`accounts { stored }`), and
// for the operator's accounts from the Caddyfile the passkeys and
// recovery codes that their people add. The store keeps records and
// their indices; the accounts package decides what goes in them (it
// hashes passwords and recovery codes, checks WebAuthn assertions).
//
// What is short-lived and used once needs no part of its own: an
// invitation, a reset link and a WebAuthn ceremony's challenge are each
// a Stash under its own key and a Take when used (Pending), which is
// single-use and expires with its TTL in every store.

// Errors of the accounts part.
var (
	// ErrAccountExists: the user id, the email (compared without case),
	// the handle or a passkey's credential id belongs to another account.
	ErrAccountExists = errors.New("account already exists")
	// ErrBadAccount: a record the store will not keep (no user id, an id
	// or field too long, a passkey without an id, a fixed field changed).
	ErrBadAccount = errors.New("invalid account")
	// ErrAccountBusy: an update lost to concurrent updates of the same
	// account too many times in a row (Redis); the caller may try again.
	ErrAccountBusy = errors.New("account is being changed by others: try again")
	// ErrNoAccounts: the store under a Timed keeps no accounts.
	ErrNoAccounts = errors.New("the session store keeps no accounts")
)

// Account is one account kept in the store.
type Account struct {
	UserID string   `json:"id"`
	Email  string   `json:"email,omitempty"` // unique without case when set
	Name   string   `json:"name,omitempty"`
	Roles  []string `json:"roles,omitempty"`
	// PasswordHash is the password's hash as the accounts package made it
	// (bcrypt or argon2id); empty: no password (passkeys only, or an
	// invitation not yet used).
	PasswordHash string `json:"pw,omitempty"`
	// TOTPSecret is the authenticator app's secret; empty: none.
	TOTPSecret string `json:"totp,omitempty"`
	// RecoveryCodes are the hashes of the unused recovery codes: the
	// accounts package hashes them, the store keeps and removes them.
	RecoveryCodes []string  `json:"rc,omitempty"`
	Passkeys      []Passkey `json:"pk,omitempty"`
	// Handle is the account's WebAuthn user handle: random, 32 bytes,
	// made by CreateAccount when empty and fixed from then on.
	Handle   []byte `json:"h"`
	Disabled bool   `json:"off,omitempty"`
	// Stored: the account itself lives in the store; false for an
	// operator's account from the Caddyfile whose passkeys and recovery
	// codes live here (its password and TOTP stay in the Caddyfile).
	Stored       bool      `json:"st,omitempty"`
	CreatedAt    time.Time `json:"at"`
	LastSignInAt time.Time `json:"last,omitzero"`
	// Version counts the record's writes: 1 at creation, one more at each
	// update. The store sets it.
	Version int64 `json:"v"`
}

// Passkey is one WebAuthn credential of an account: what go-webauthn's
// webauthn.Credential needs to be rebuilt for an assertion (the
// attestation statement itself is not kept), in plain types so that the
// store does not depend on the WebAuthn library.
type Passkey struct {
	ID        []byte `json:"id"` // the credential id
	Name      string `json:"name,omitempty"`
	PublicKey []byte `json:"key"` // COSE-encoded
	// AttestationType and AttestationFormat are webauthn.Credential's.
	AttestationType   string `json:"att,omitempty"`
	AttestationFormat string `json:"fmt,omitempty"`
	// SignCount never goes back: an update that lowers it keeps the
	// higher count already stored.
	SignCount    uint32   `json:"n,omitempty"`
	CloneWarning bool     `json:"clone,omitempty"`
	AAGUID       []byte   `json:"aaguid,omitempty"`
	Attachment   string   `json:"attach,omitempty"` // platform, cross-platform
	Transports   []string `json:"tr,omitempty"`
	// The flags webauthn.CredentialFlags keeps.
	UserPresent    bool      `json:"up,omitempty"`
	UserVerified   bool      `json:"uv,omitempty"`
	BackupEligible bool      `json:"be,omitempty"`
	BackupState    bool      `json:"bs,omitempty"`
	AddedAt        time.Time `json:"added"`
	LastUsedAt     time.Time `json:"used,omitzero"`
}

// Accounts keeps the accounts. Every method is one atomic operation on
// the backing store, so that concurrent gateways sharing it agree.
type Accounts interface {
	// CreateAccount stores a new account. It makes a.Handle when empty
	// and sets a.Version to 1. ErrAccountExists when the user id, the
	// email (without case), the handle or a passkey id is taken.
	CreateAccount(ctx context.Context, a *Account) error

	// GetAccount returns the account of userID, or ErrNotFound.
	GetAccount(ctx context.Context, userID string) (*Account, error)

	// AccountByEmail finds an account by its email, without case.
	AccountByEmail(ctx context.Context, email string) (*Account, error)

	// AccountByHandle finds an account by its WebAuthn user handle.
	AccountByHandle(ctx context.Context, handle []byte) (*Account, error)

	// AccountByPasskey finds the account that holds the passkey with
	// credentialID (a discoverable sign-in names no user).
	AccountByPasskey(ctx context.Context, credentialID []byte) (*Account, error)

	// ListAccounts returns the accounts ordered by user id, a page at a
	// time: at most limit (0 or less: all) after the position after
	// (empty: from the start), and the position of the next page (empty
	// when there is none). A position the store did not give is
	// ErrBadCursor.
	ListAccounts(ctx context.Context, after string, limit int) ([]*Account, string, error)

	// UpdateAccount reads the account, lets fn change it and writes it
	// back, atomically against every other writer (other gateways too):
	// of two updates that use the same recovery code, one sees it gone.
	// fn may run more than once (the store retries when another write
	// came between), so it must only change the account it is given;
	// its error aborts the update, writes nothing and is returned. The
	// file store runs fn holding its write lock: fn must be quick (hash
	// a recovery code before, and compare hashes in fn). The
	// user id and the handle are fixed (ErrBadAccount), and CreatedAt is
	// kept. An email or passkey id that another account holds is
	// ErrAccountExists. It returns the account as written.
	UpdateAccount(ctx context.Context, userID string, fn func(*Account) error) (*Account, error)

	// DeleteAccount removes the account and its indices, or ErrNotFound.
	DeleteAccount(ctx context.Context, userID string) error
}

// Limits on what an account record holds.
const (
	maxAccountID    = 256
	maxAccountEmail = 320
	maxHandle       = 64   // WebAuthn: a user handle is at most 64 bytes
	maxCredentialID = 1023 // WebAuthn: a credential id is at most 1023 bytes
	handleSize      = 32
)

// Clone returns a deep copy of a.
func (a *Account) Clone() *Account {
	if a == nil {
		return nil
	}
	c := *a
	c.Roles = slices.Clone(a.Roles)
	c.RecoveryCodes = slices.Clone(a.RecoveryCodes)
	c.Handle = bytes.Clone(a.Handle)
	c.Passkeys = make([]Passkey, len(a.Passkeys))
	for i, p := range a.Passkeys {
		p.ID = bytes.Clone(p.ID)
		p.PublicKey = bytes.Clone(p.PublicKey)
		p.AAGUID = bytes.Clone(p.AAGUID)
		p.Transports = slices.Clone(p.Transports)
		c.Passkeys[i] = p
	}
	if a.Passkeys == nil {
		c.Passkeys = nil
	}
	return &c
}

// EmailKey is how an email is compared: without case.
func EmailKey(email string) string { return strings.ToLower(email) }

// check reports what keeps a from being stored.
func (a *Account) check() error {
	bad := func(why string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrBadAccount, fmt.Sprintf(why, args...))
	}
	switch {
	case a.UserID == "" || len(a.UserID) > maxAccountID || !utf8.ValidString(a.UserID):
		return bad("a user id is 1 to %d bytes of UTF-8", maxAccountID)
	case len(a.Email) > maxAccountEmail || !utf8.ValidString(a.Email):
		return bad("an email is at most %d bytes of UTF-8", maxAccountEmail)
	case len(a.Handle) == 0 || len(a.Handle) > maxHandle:
		return bad("a handle is 1 to %d bytes", maxHandle)
	}
	seen := make(map[string]bool, len(a.Passkeys))
	for _, p := range a.Passkeys {
		if len(p.ID) == 0 || len(p.ID) > maxCredentialID {
			return bad("a passkey's id is 1 to %d bytes", maxCredentialID)
		}
		if seen[string(p.ID)] {
			return fmt.Errorf("%w: the account holds a passkey twice", ErrAccountExists)
		}
		seen[string(p.ID)] = true
	}
	return nil
}

// newAccount prepares a for CreateAccount: a copy to store, with its
// handle made when empty and Version 1 (set in a too).
func newAccount(a *Account) (*Account, error) {
	if a == nil {
		return nil, fmt.Errorf("%w: none given", ErrBadAccount)
	}
	if len(a.Handle) == 0 {
		h := make([]byte, handleSize)
		if _, err := rand.Read(h); err != nil {
			return nil, err
		}
		a.Handle = h
	}
	a.Version = 1
	c := a.Clone()
	if err := c.check(); err != nil {
		return nil, err
	}
	return c, nil
}

// applyUpdate runs fn on a copy of cur and settles the result: the fixed
// fields checked, CreatedAt kept, no passkey's sign count lower than
// stored, Version one more. fn's error is returned as it is.
func applyUpdate(cur *Account, fn func(*Account) error) (*Account, error) {
	next := cur.Clone()
	if err := fn(next); err != nil {
		return nil, err
	}
	if next.UserID != cur.UserID || !bytes.Equal(next.Handle, cur.Handle) {
		return nil, fmt.Errorf("%w: the user id and the handle cannot change", ErrBadAccount)
	}
	next.CreatedAt = cur.CreatedAt
	next.Version = cur.Version + 1
	for i, p := range next.Passkeys {
		for _, q := range cur.Passkeys {
			if bytes.Equal(p.ID, q.ID) && q.SignCount > p.SignCount {
				next.Passkeys[i].SignCount = q.SignCount
			}
		}
	}
	if err := next.check(); err != nil {
		return nil, err
	}
	return next, nil
}

// Index entries: what finds an account besides its user id. Each is a
// kind byte and the value (an email as EmailKey has it).
const (
	indexEmail   = 'e'
	indexHandle  = 'h'
	indexPasskey = 'p'
)

func indexKey(kind byte, v []byte) string { return string(kind) + ":" + string(v) }

// indexKeys lists a's index entries.
func (a *Account) indexKeys() []string {
	keys := []string{indexKey(indexHandle, a.Handle)}
	if a.Email != "" {
		keys = append(keys, indexKey(indexEmail, []byte(EmailKey(a.Email))))
	}
	for _, p := range a.Passkeys {
		keys = append(keys, indexKey(indexPasskey, p.ID))
	}
	return keys
}

// indexChanges returns the entries of cur that next drops and those it
// adds.
func indexChanges(cur, next *Account) (drop, add []string) {
	was, is := cur.indexKeys(), next.indexKeys()
	for _, k := range was {
		if !slices.Contains(is, k) {
			drop = append(drop, k)
		}
	}
	for _, k := range is {
		if !slices.Contains(was, k) {
			add = append(add, k)
		}
	}
	return drop, add
}

// Account list positions are the last user id of a page, encoded.
const accountCursorPrefix = "a."

func accountCursor(userID string) string {
	return accountCursorPrefix + base64.RawURLEncoding.EncodeToString([]byte(userID))
}

// parseAccountCursor returns the user id a position names ("" for
// none), or ErrBadCursor.
func parseAccountCursor(after string) (string, error) {
	if after == "" {
		return "", nil
	}
	rest, ok := strings.CutPrefix(after, accountCursorPrefix)
	id, err := base64.RawURLEncoding.DecodeString(rest)
	if !ok || err != nil || len(id) == 0 {
		return "", ErrBadCursor
	}
	return string(id), nil
}

// accountPage cuts a page from as, which holds the accounts after the
// position in order, up to one more than limit: the page, and the
// position of the next.
func accountPage(as []*Account, limit int) ([]*Account, string) {
	if limit <= 0 || len(as) <= limit {
		return as, ""
	}
	as = as[:limit]
	return as, accountCursor(as[limit-1].UserID)
}
