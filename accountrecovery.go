package sessionauth

import (
	"errors"
	"net/http"
	"slices"

	"github.com/sessionauth/caddy-sessionauth/accounts"
	"github.com/sessionauth/caddy-sessionauth/session"
)

// Recovery codes (SPEC 15): POST /account/recovery-codes makes ten new
// ones, shows them once and keeps their hashes in place of the old; the
// second step of sign-in takes one in place of a TOTP code, once.

type accountCodesData struct {
	Site, Endpoints string
	Codes           []string
}

type recoveryCodesJSON struct {
	RecoveryCodes []string `json:"recovery_codes"`
}

// recoveryCodes answers POST {endpoints}/account/recovery-codes.
func (p *accountPages) recoveryCodes(w http.ResponseWriter, r *http.Request) error {
	cur, a, done, err := p.change(w, r)
	if done {
		return err
	}
	codes, hashes, err := accounts.MakeRecoveryCodes()
	if err != nil {
		return p.host.storeUnavailable(w, r, err)
	}
	rec, err := p.update(r.Context(), a, func(acct *session.Account) error {
		acct.RecoveryCodes = hashes
		return nil
	})
	switch {
	case errors.Is(err, session.ErrNotFound):
		return answer(w, r, problemNoAccount)
	case err != nil:
		return p.host.storeUnavailable(w, r, err)
	}
	a.rec = rec
	e := eventOf(cur, eventRecoveryCodes, p.now(), "")
	e.IP, e.Actor = clientIP(r), session.ActorSelf
	p.record(r, e)
	p.notifier.accountChanged(r, eventRecoveryCodes, cur, a.email(), p.now())
	// Shown once: the answer is the only place the codes are, never cached.
	if !wantsPage(r) {
		return writeJSON(w, http.StatusOK, recoveryCodesJSON{codes})
	}
	htmlHeaders(w)
	w.WriteHeader(http.StatusOK)
	return renderPage(w, pageAccountCodes, accountCodesData{Site: siteLabel(p.baseURL, r), Endpoints: p.endpoints, Codes: codes})
}

// errRecoveryCodeUsed: the code was used by another sign-in meanwhile.
var errRecoveryCodeUsed = errors.New("recovery code used already")

// useRecoveryCode spends typed, one of user's recovery codes: ok is
// false when it is none of them (or was used, here or on another
// gateway, a moment before); err is the store's.
func useRecoveryCode(r *http.Request, st session.Store, user, typed string) (ok bool, err error) {
	ctx := r.Context()
	rec, err := accountRecord(ctx, st, user)
	if err != nil || rec == nil || rec.Disabled {
		return false, err
	}
	i, ok := accounts.MatchRecoveryCode(typed, rec.RecoveryCodes)
	if !ok {
		return false, nil
	}
	used := rec.RecoveryCodes[i]
	accts, err := storeAccounts(st)
	if err != nil {
		return false, err
	}
	_, err = accts.UpdateAccount(ctx, user, func(a *session.Account) error {
		j := slices.Index(a.RecoveryCodes, used)
		if j < 0 {
			return errRecoveryCodeUsed
		}
		a.RecoveryCodes = slices.Delete(a.RecoveryCodes, j, j+1)
		return nil
	})
	if errors.Is(err, errRecoveryCodeUsed) || errors.Is(err, session.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}
