package sessionauth

import (
	"context"
	"errors"
	"net/http"

	"go.uber.org/zap"

	"github.com/sessionauth/caddy-sessionauth/accounts"
	"github.com/sessionauth/caddy-sessionauth/session"
)

// Stored accounts (SPEC 15, `accounts { stored }`): accounts kept in the
// session store beside the Caddyfile's, created on the admin API
// (admin_accounts.go), activated by an invitation (invite.go) and
// signed in with on the accounts form (signin_accounts.go), after the
// Caddyfile's accounts.

// Audit events of stored accounts.
const (
	eventAccountCreated   = "account_created"
	eventAccountActivated = "account_activated" // the invitation's password set
	eventAccountDisabled  = "account_disabled"
	eventAccountEnabled   = "account_enabled"
	eventAccountDeleted   = "account_deleted"
	eventPasswordReset    = "password_reset"
)

// accountsOf is the Accounts part of the handler's store (Timed has it,
// and answers ErrNoAccounts for a store without it).
func accountsOf(s session.Store) (session.Accounts, error) {
	if a, ok := session.As[session.Accounts](s); ok {
		return a, nil
	}
	return nil, session.ErrNoAccounts
}

// storedAccount is the stored account of user; nil when there is none,
// or without `stored`.
func (l *localSignIn) storedAccount(ctx context.Context, user string) (*session.Account, error) {
	if !l.stored {
		return nil, nil
	}
	st, err := accountsOf(l.live.store())
	if err != nil {
		return nil, err
	}
	a, err := st.GetAccount(ctx, user)
	if errors.Is(err, session.ErrNotFound) {
		return nil, nil
	}
	return a, err
}

// operatorDisabled: the Caddyfile's account user has a record in the
// store (its TOTP or passkeys live there) that an admin disabled. Such an
// account signs in no more; without this, disabling would drop its stored
// second factor and leave the password alone to sign in.
func (l *localSignIn) operatorDisabled(ctx context.Context, user string) (bool, error) {
	st, err := accountsOf(l.live.store())
	if err != nil {
		return false, nil // a store without accounts keeps no record
	}
	a, err := st.GetAccount(ctx, user)
	if errors.Is(err, session.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return a.Disabled, nil
}

// directoryAccount is a stored account as the accounts form checks it.
func directoryAccount(a *session.Account) accounts.Account {
	return accounts.Account{User: a.UserID, Hash: a.PasswordHash, Email: a.Email, Name: a.Name, Roles: a.Roles, TOTP: a.TOTPSecret}
}

// checkPassword checks a user name and password: the Caddyfile's
// accounts first, then the stored ones. A stored account that cannot
// sign in with a password (disabled, none set yet) and a name nobody has
// are compared with a dummy hash of the stored accounts' cost, and
// refused like a wrong password. known: an account has that name (for
// the login_failed event); stored: the stored account signed in.
func (l *localSignIn) checkPassword(ctx context.Context, user, password string) (acct accounts.Account, stored *session.Account, known, ok bool, err error) {
	if _, inFile := l.dir.Lookup(user); inFile || !l.stored {
		acct, ok = l.dir.Check(user, password)
		if ok && inFile {
			disabled, err := l.operatorDisabled(ctx, user)
			if err != nil {
				return accounts.Account{}, nil, false, false, err
			}
			ok = !disabled
		}
		return acct, nil, inFile, ok, nil
	}
	sa, err := l.storedAccount(ctx, user)
	if err != nil {
		return accounts.Account{}, nil, false, false, err
	}
	usable := sa != nil && !sa.Disabled && sa.PasswordHash != ""
	hash := ""
	if usable {
		hash = sa.PasswordHash
	}
	if !accounts.CheckStored(hash, usable, password) {
		return accounts.Account{}, nil, sa != nil, false, nil
	}
	return directoryAccount(sa), sa, true, true, nil
}

// lookup is the account of user that may sign in: the Caddyfile's, or an
// enabled stored one.
func (l *localSignIn) lookup(ctx context.Context, user string) (accounts.Account, *session.Account, bool, error) {
	if a, ok := l.dir.Lookup(user); ok {
		disabled, err := l.operatorDisabled(ctx, user)
		if err != nil || disabled {
			return accounts.Account{}, nil, false, err
		}
		return a, nil, true, nil
	}
	sa, err := l.storedAccount(ctx, user)
	if err != nil || sa == nil || sa.Disabled {
		return accounts.Account{}, nil, false, err
	}
	return directoryAccount(sa), sa, true, nil
}

// hasAccounts: the form has accounts to check.
func (l *localSignIn) hasAccounts() bool { return l.dir.Len() > 0 || l.stored }

// signedInStored records a stored account's sign-in (last_sign_in_at).
// The session is minted: a store that fails here is logged, not shown.
func (l *localSignIn) signedInStored(r *http.Request, user string) {
	st, err := accountsOf(l.live.store())
	if err == nil {
		now := l.live.now().UTC()
		_, err = st.UpdateAccount(r.Context(), user, func(a *session.Account) error {
			a.LastSignInAt = now
			return nil
		})
	}
	if err != nil && !errors.Is(err, session.ErrNotFound) {
		l.live.logger().Error("recording a stored account's sign-in", zap.String("user_id", user), zap.Error(err))
	}
}

// needsSecondFactor: under `second_factor required`, a stored account
// with neither TOTP nor a passkey must add one before it is signed in.
func (l *localSignIn) needsSecondFactor(sa *session.Account) bool {
	return l.secondFactor == secondFactorRequired && sa != nil && sa.TOTPSecret == "" && len(sa.Passkeys) == 0
}

// recordAccountEvent writes an audit event of a stored account (actor
// admin or self) to the store and the log.
func (h *Handler) recordAccountEvent(ctx context.Context, typ, user, actor, ip string) {
	e := session.Event{Type: typ, At: h.now().UTC(), UserID: user, Actor: actor, IP: ip}
	h.logEvent(e)
	if err := h.store.Record(ctx, e, h.policy); err != nil {
		h.logger.Error("recording an account event", zap.String("event", typ), zap.Error(err))
	}
}

// hasOperatorAccount reports whether user is an account of the
// Caddyfile (p may be nil).
func (p *signInPages) hasOperatorAccount(user string) bool {
	if p == nil {
		return false
	}
	_, ok := p.local.dir.Lookup(user)
	return ok
}
