package sessionauth

import "context"

// noRecoveryCodes reports whether user has no unused recovery code, so
// that the code step does not offer one to someone who never made any
// (the demo's bob, or any account before its recovery codes page).
func (l *localSignIn) noRecoveryCodes(ctx context.Context, user string) (bool, error) {
	rec, err := accountRecord(ctx, l.live.store(), user)
	if err != nil {
		return false, err
	}
	return accountOf{rec: rec}.recoveryLeft() == 0, nil
}
