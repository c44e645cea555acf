package sessionauth

import (
	"context"
	"errors"
	"strings"

	"github.com/sessionauth/caddy-sessionauth/accounts"
	"github.com/sessionauth/caddy-sessionauth/session"
)

// `second_factor required` for the operator's accounts (SPEC 15): an
// account of the Caddyfile with no TOTP there, none added in the store
// and no passkey adds an authenticator app right after its password, as
// a stored account does (signin_enrol.go). Its TOTP then lives in the
// store, in the record that keeps the account's passkeys and recovery
// codes, and its password stays the Caddyfile's. The one rule of who
// must enrol, for both kinds of account, is mustAddSecondFactor.

// mustAddSecondFactor: acct, whose password was right, must add a second
// factor before it is signed in: an operator's account or a stored one
// (stored, its record) with no TOTP (the Caddyfile's or the store's,
// withStoredTOTP) and no passkey that works here (withPasskey: passkeys
// on and one added; a passkey kept while passkeys are off is none).
func (l *localSignIn) mustAddSecondFactor(stored *session.Account, acct accounts.Account, withPasskey bool) bool {
	if l.secondFactor != secondFactorRequired || acct.TOTP != "" || withPasskey {
		return false
	}
	if stored != nil {
		return true
	}
	_, ok := l.dir.Lookup(acct.User)
	return ok
}

// operatorRecord makes the store's record of an operator's account when
// it has none yet, for its enrolled TOTP.
func operatorRecord(ctx context.Context, st session.Accounts, user string, l *localSignIn) error {
	if _, ok := l.dir.Lookup(user); !ok {
		return nil
	}
	err := st.CreateAccount(ctx, &session.Account{UserID: user, CreatedAt: l.live.now().UTC()})
	if errors.Is(err, session.ErrAccountExists) {
		return nil // there already, or made meanwhile
	}
	return err
}

// enrolledWho is who an enrolment signs in: the stored account's fields,
// or the Caddyfile's for an operator's account.
func (l *localSignIn) enrolledWho(rec *session.Account) (who signedIn, email string) {
	if !rec.Stored {
		if a, ok := l.dir.Lookup(rec.UserID); ok {
			return signedIn{userID: a.User, email: a.Email, name: a.Name, roles: strings.Join(a.Roles, ","), method: session.MethodPasswordTOTP}, a.Email
		}
	}
	return signedIn{userID: rec.UserID, email: rec.Email, name: rec.Name, roles: strings.Join(rec.Roles, ","), method: session.MethodPasswordTOTP}, rec.Email
}
