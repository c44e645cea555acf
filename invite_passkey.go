package sessionauth

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strings"

	"go.uber.org/zap"

	"github.com/sessionauth/caddy-sessionauth/accounts"
	"github.com/sessionauth/caddy-sessionauth/geo"
	"github.com/sessionauth/caddy-sessionauth/session"
)

// "Add a passkey" on the invitation page (SPEC 15): the person sets up
// the account with a passkey instead of (or before choosing) a password,
// and is signed in by it. There is no session yet, so the ceremony is
// bound to the invitation's token (sent in X-Invite-Token, never in the
// address) and to the browser by the sign-in form's CSRF cookie, as the
// passkey sign-in is. The invitation is spent only when the passkey is
// stored: a refused or abandoned ceremony leaves the link working.

// inviteTokenHeader carries the invitation's token from passkeys.js.
const inviteTokenHeader = "X-Invite-Token"

// msgInviteGone is problemInviteGone in the script's words.
var msgInviteGone = problemInviteGone.title + ". " + problemInviteGone.text

// inviteRelyingParty is relyingParty asking for user verification: the
// passkey is the account's only way in, so it must prove the person
// (a PIN, fingerprint or face), not just the key.
func (p *passkeySignIn) inviteRelyingParty(r *http.Request) (*accounts.Passkeys, error) {
	q := *p
	q.cfg.UserVerification = "required"
	return q.relyingParty(r)
}

// inviteOpen is the invitation of r's X-Invite-Token and its account,
// put back so that the link keeps working until the passkey is stored;
// false when the answer was written (gone, used, the account changed).
func (p *passkeySignIn) inviteOpen(w http.ResponseWriter, r *http.Request) (invitation, *session.Account, bool, error) {
	s := p.h.signIn
	token := r.Header.Get(inviteTokenHeader)
	inv, err := s.takeInvite(r.Context(), token)
	if errors.Is(err, session.ErrNotFound) {
		return inv, nil, false, passkeyRefused(w, http.StatusGone, problemInviteGone.code, msgInviteGone)
	}
	if err != nil {
		return inv, nil, false, p.h.storeUnavailable(w, r, err)
	}
	if err := s.putInviteBack(r.Context(), token, inv); err != nil {
		return inv, nil, false, p.h.storeUnavailable(w, r, err)
	}
	acct, err := s.inviteAccount(r.Context(), inv)
	if errors.Is(err, errInviteStale) {
		return inv, nil, false, passkeyRefused(w, http.StatusGone, problemInviteGone.code, msgInviteGone)
	}
	if err != nil {
		return inv, nil, false, p.h.storeUnavailable(w, r, err)
	}
	return inv, acct, true, nil
}

// inviteBegin starts registering a passkey for the invitation's account:
// the options, the state kept in the store under a random id that the
// ceremony cookie holds, beside the account it is for.
func (p *passkeySignIn) inviteBegin(w http.ResponseWriter, r *http.Request) error {
	if p.h.signIn == nil || !p.h.signIn.local.stored {
		return writeJSON(w, http.StatusNotFound, errorBody{"not_found"})
	}
	if !p.checkForm(w, r) {
		return nil
	}
	if err := p.h.rateLimit(r, limitLogin, clientKey(clientIP(r)), "", p.h.LoginRate); err != nil {
		return p.h.refuse(w, r, err)
	}
	_, acct, ok, err := p.inviteOpen(w, r)
	if !ok {
		return err
	}
	rp, err := p.inviteRelyingParty(r)
	if err != nil {
		return writeJSON(w, http.StatusBadRequest, errorBody{"bad_request"})
	}
	options, state, err := rp.BeginRegistration(passkeyUser(acct))
	if err != nil {
		return err
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	v := append([]byte(acct.UserID+"\x00"), state...)
	if err := p.h.store.Stash(r.Context(), "pkinvite:"+id, v, accounts.PasskeyCeremonyTimeout, p.h.now()); err != nil {
		return p.h.storeUnavailable(w, r, err)
	}
	http.SetCookie(w, p.ceremonyCookie(r, id, accounts.PasskeyCeremonyTimeout))
	return writeRawJSON(w, http.StatusOK, options)
}

// inviteFinish checks the new passkey, stores it on the account, spends
// the invitation and signs the person in (X-Auth-Method passkey).
func (p *passkeySignIn) inviteFinish(w http.ResponseWriter, r *http.Request) error {
	if p.h.signIn == nil || !p.h.signIn.local.stored {
		return writeJSON(w, http.StatusNotFound, errorBody{"not_found"})
	}
	if !p.checkForm(w, r) {
		return nil
	}
	h := p.h
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err != nil {
		return passkeyRefused(w, http.StatusBadRequest, "bad_request", "The passkey's answer was too large.")
	}
	ctx := r.Context()
	now := h.now()
	c, cerr := r.Cookie(h.cookies.cookieName(r) + passkeyCookieSuffix)
	http.SetCookie(w, p.ceremonyCookie(r, "", -1))
	if cerr != nil || !validDeviceID(c.Value) {
		return passkeyRefused(w, http.StatusBadRequest, "passkey_expired", "Adding the passkey took too long. Try again.")
	}
	v, err := h.store.Take(ctx, "pkinvite:"+c.Value, now)
	if errors.Is(err, session.ErrNotFound) {
		return passkeyRefused(w, http.StatusBadRequest, "passkey_expired", "Adding the passkey took too long. Try again.")
	}
	if err != nil {
		return h.storeUnavailable(w, r, err)
	}
	user, state, _ := strings.Cut(string(v), "\x00")
	inv, acct, ok, err := p.inviteOpen(w, r)
	if !ok {
		return err
	}
	if inv.User != user {
		// Begun for another invitation: this one stays as it was.
		return passkeyRefused(w, http.StatusBadRequest, "passkey_expired", "Adding the passkey took too long. Try again.")
	}
	rp, err := p.inviteRelyingParty(r)
	if err != nil {
		return writeJSON(w, http.StatusBadRequest, errorBody{"bad_request"})
	}
	cred, err := rp.FinishRegistration(ctx, passkeyUser(acct), []byte(state), body, now)
	if err != nil {
		if c := h.logger.Check(zap.InfoLevel, "invitation passkey refused"); c != nil {
			c.Write(zap.String("user_id", user), zap.String("ip_address", clientIP(r)), zap.Error(err))
		}
		return passkeyRefused(w, http.StatusBadRequest, "passkey_refused",
			"The passkey was not added. Try again with a passkey that checks it's you (a PIN, fingerprint or face), or choose a password.")
	}
	// Spent now, once: of two browsers finishing at once, one gets it.
	token := r.Header.Get(inviteTokenHeader)
	if _, err := h.signIn.takeInvite(ctx, token); errors.Is(err, session.ErrNotFound) {
		return passkeyRefused(w, http.StatusGone, problemInviteGone.code, msgInviteGone)
	} else if err != nil {
		return h.storeUnavailable(w, r, err)
	}
	name := passkeyDeviceName(r)
	st, err := accountsPartOf(h.store)
	if err != nil {
		return h.storeUnavailable(w, r, err)
	}
	acct, err = st.UpdateAccount(ctx, user, func(a *session.Account) error {
		if a.Disabled || a.PasswordHash != "" {
			return errInviteStale
		}
		a.Passkeys = append(a.Passkeys, session.Passkey{
			ID: cred.ID, Name: name, PublicKey: cred.PublicKey, SignCount: cred.SignCount, AAGUID: cred.AAGUID, Transports: cred.Transports,
			UserPresent: cred.UserPresent, UserVerified: cred.UserVerified, BackupEligible: cred.BackupEligible, BackupState: cred.BackupState,
			AddedAt: now.UTC(),
		})
		a.LastSignInAt = now.UTC()
		return nil
	})
	switch {
	case errors.Is(err, errInviteStale) || errors.Is(err, session.ErrNotFound):
		return passkeyRefused(w, http.StatusGone, problemInviteGone.code, msgInviteGone)
	case errors.Is(err, session.ErrAccountExists):
		// The passkey is another account's: the link stays for a try
		// with another passkey or a password.
		if err := h.signIn.putInviteBack(ctx, token, inv); err != nil {
			return h.storeUnavailable(w, r, err)
		}
		return passkeyRefused(w, http.StatusConflict, "passkey_exists", "This passkey belongs to another account already.")
	case err != nil:
		return h.storeUnavailable(w, r, err)
	}
	h.signIn.accountEvent(r, eventAccountActivated, user)
	p.inviteAudit(r, user, name)
	who := signedIn{userID: acct.UserID, email: acct.Email, name: acct.Name, roles: strings.Join(acct.Roles, ","), method: methodPasskey}
	return h.finishSignIn(w, r, who, stepUpOf{}, func() error {
		return writeJSON(w, http.StatusOK, struct {
			Location string `json:"location"`
		}{"/"})
	})
}

// inviteAudit records passkey_added for the account the invitation set
// up: there is no session to take the event's fields from yet.
func (p *passkeySignIn) inviteAudit(r *http.Request, user, name string) {
	e := session.Event{Type: eventPasskeyAdded, At: p.h.now().UTC(), UserID: user, IP: clientIP(r), Actor: session.ActorSelf, Reason: name}
	p.h.logEvent(e)
	if err := p.h.store.Record(r.Context(), e, p.h.policy); err != nil {
		p.h.logger.Error("recording "+eventPasskeyAdded, zap.String("user_id", user), zap.Error(err))
	}
}

// passkeyDeviceName names a new passkey after the browser and OS that
// added it ("Chrome on macOS"), else "Passkey".
func passkeyDeviceName(r *http.Request) string {
	d := geo.ParseUserAgent(r.UserAgent())
	if d.Browser == "" || strings.HasPrefix(d.Browser, "Unknown") {
		return "Passkey"
	}
	if d.OS != "" && !strings.HasPrefix(d.OS, "Unknown") {
		return d.Browser + " on " + d.OS
	}
	return d.Browser
}
