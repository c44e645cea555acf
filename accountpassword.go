package sessionauth

import (
	"errors"
	"net/http"

	"github.com/sessionauth/caddy-sessionauth/accounts"
	"github.com/sessionauth/caddy-sessionauth/session"
)

// errPasswordChanged: the password changed between its check and the
// write (another tab, another gateway): nothing is written.
var errPasswordChanged = errors.New("the password was changed meanwhile")

// password answers POST {endpoints}/account/password (current, new): a
// stored account's own password; the account's other browser sessions
// end, this one stays.
func (p *accountPages) password(w http.ResponseWriter, r *http.Request) error {
	cur, a, done, err := p.change(w, r)
	if done {
		return err
	}
	if !a.stored() {
		return p.refusedChange(w, r, cur, a, http.StatusForbidden, "password_is_the_operators",
			"The password of this account is set by the site's operator.")
	}
	next := r.PostFormValue("new")
	if !accounts.PasswordLengthOK(next) {
		return p.refusedChange(w, r, cur, a, http.StatusBadRequest, "password_length",
			"A new password has 8 to 256 characters.")
	}
	settle, err := p.host.spendProof(r, passwordLimit, a.user)
	if err != nil {
		return p.host.refuse(w, r, err)
	}
	old := a.rec.PasswordHash
	right := old != "" && accounts.CheckPassword(old, r.PostFormValue("current"))
	settle(right)
	if !right {
		return p.refusedChange(w, r, cur, a, http.StatusForbidden, "wrong_password",
			"Your current password is not the one you typed. Nothing was changed.")
	}
	hash, err := accounts.HashPassword(next)
	if err != nil {
		return p.host.storeUnavailable(w, r, err)
	}
	rec, err := p.update(r.Context(), a, func(acct *session.Account) error {
		if !acct.Stored || acct.PasswordHash != old {
			return errPasswordChanged
		}
		acct.PasswordHash = hash
		return nil
	})
	switch {
	case errors.Is(err, errPasswordChanged), errors.Is(err, session.ErrNotFound):
		return p.refusedChange(w, r, cur, a, http.StatusConflict, "changed_meanwhile",
			"Your password was changed elsewhere meanwhile. Nothing was changed here.")
	case err != nil:
		return p.host.storeUnavailable(w, r, err)
	}
	a.rec = rec
	// Whoever knew the old password is signed out everywhere but here.
	now := p.now()
	ended, err := p.store.EndUser(r.Context(), a.user, cur.ID, now, session.EndRevoked, session.ActorSelf, p.policy)
	if err != nil {
		return p.host.storeUnavailable(w, r, err)
	}
	p.host.sessionsEnded(ended, ending{reason: session.EndRevoked, actor: session.ActorSelf, at: now, ctx: r.Context()})
	return p.changed(w, r, cur, a, eventPasswordChanged)
}
