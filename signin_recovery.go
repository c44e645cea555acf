package sessionauth

import (
	"context"
	"net/http"

	"go.uber.org/zap"

	"github.com/sessionauth/caddy-sessionauth/accounts"
	"github.com/sessionauth/caddy-sessionauth/session"
)

// The second step of an account's sign-in (SPEC 15): a TOTP the person
// added on the account page is asked like the Caddyfile's, and the
// code field takes one recovery code in place of a TOTP code.

const (
	wrongRecoveryCode    = "That recovery code is not one of yours, or it was used already."
	wrongCodePasskeyOnly = "This account has no authenticator app: use your passkey, or enter one of your recovery codes."
)

// withStoredTOTP is acct with the TOTP its person added on the account
// page, kept in the store, when the Caddyfile gives it none.
func (l *localSignIn) withStoredTOTP(ctx context.Context, acct accounts.Account) (accounts.Account, error) {
	if acct.TOTP != "" {
		return acct, nil
	}
	rec, err := accountRecord(ctx, l.live.store(), acct.User)
	if err != nil {
		return acct, err
	}
	if rec != nil && !rec.Disabled {
		acct.TOTP = rec.TOTPSecret
	}
	return acct, nil
}

// checkSecondFactor checks code as a TOTP code or, when it has a
// recovery code's shape, as one of the account's recovery codes, which
// it spends (recovered true): what to tell the user ("" when the code
// is good); err is the store's.
func (l *localSignIn) checkSecondFactor(r *http.Request, acct accounts.Account, code string) (reason string, recovered bool, err error) {
	if !accounts.LooksLikeRecoveryCode(code) {
		if acct.TOTP == "" {
			return wrongCodePasskeyOnly, false, nil // no app: only a recovery code goes here
		}
		return l.checkCode(r, acct, code), false, nil
	}
	ok, err := useRecoveryCode(r, l.live.store(), acct.User, code)
	if err != nil || !ok {
		return wrongRecoveryCode, false, err
	}
	e := session.Event{Type: eventRecoveryCodeUsed, At: l.live.now().UTC(), UserID: acct.User, IP: clientIP(r), Actor: session.ActorSelf}
	l.pages.host.logEvent(e)
	if err := l.live.store().Record(r.Context(), e, l.live.policy()); err != nil {
		l.live.logger().Error("recording a recovery code used", zap.Error(err))
	}
	return "", true, nil
}

// mailRecoveryCodeUsed is who and land, the sign-in's, with the mail of a
// recovery code used (to the account's address, about the session it
// signed in or stepped up) sent as it lands.
func (l *localSignIn) mailRecoveryCodeUsed(r *http.Request, who signedIn, to string, land func() error) (signedIn, func() error) {
	var s *session.Session
	who.prepare = func(m *session.Session, _ string) error {
		s = m // the new session as minted, or the one stepped up
		return nil
	}
	return who, func() error {
		if s != nil {
			l.notifier().accountChanged(r, eventRecoveryCodeUsed, s, to, l.live.now())
		}
		return land()
	}
}
