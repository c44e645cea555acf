package sessionauth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sessionauth/caddy-sessionauth/session"
)

// The admin API's stored accounts (SPEC 15): /session-auth/accounts.

// inviteTTL is how long an invitation works.
const inviteTTL = 7 * 24 * time.Hour

// adminAccountJSON is an account as the admin API shows it.
type adminAccountJSON struct {
	UserID            string   `json:"user_id"`
	Email             string   `json:"email"`
	Name              string   `json:"name"`
	Roles             []string `json:"roles"`
	Password          bool     `json:"password"`
	TOTP              bool     `json:"totp"`
	Passkeys          int      `json:"passkeys"`
	RecoveryCodesLeft int      `json:"recovery_codes_left"`
	Disabled          bool     `json:"disabled"`
	CreatedAt         string   `json:"created_at"`
	LastSignInAt      *string  `json:"last_sign_in_at"` // null: never
}

func toAdminAccountJSON(a *session.Account) adminAccountJSON {
	j := adminAccountJSON{UserID: a.UserID, Email: a.Email, Name: a.Name, Roles: a.Roles, Password: a.PasswordHash != "",
		TOTP: a.TOTPSecret != "", Passkeys: len(a.Passkeys), RecoveryCodesLeft: len(a.RecoveryCodes), Disabled: a.Disabled,
		CreatedAt: rfc3339(a.CreatedAt)}
	if j.Roles == nil {
		j.Roles = []string{}
	}
	if !a.LastSignInAt.IsZero() {
		at := rfc3339(a.LastSignInAt)
		j.LastSignInAt = &at
	}
	return j
}

// inviteJSON answers a creation and a reset.
type inviteJSON struct {
	UserID    string `json:"user_id"`
	Invite    string `json:"invite"`
	InviteURL string `json:"invite_url,omitempty"`
	ExpiresAt string `json:"expires_at"`
}

// invitation is what an invitation's Stash keeps (under the SHA-256 of
// its token: a copy of the store holds no usable invitation).
type invitation struct {
	User    string    `json:"u"`
	Kind    string    `json:"k"` // invite or reset
	Expires time.Time `json:"e"`
}

func inviteKey(token string) string { return "invite:" + hex.EncodeToString(sha256Of(token)) }

// issueInvite stashes a new invitation of user on ref's store.
func issueInvite(ctx context.Context, ref storeRef, user, kind string) (inviteJSON, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return inviteJSON{}, err
	}
	token := base64.RawURLEncoding.EncodeToString(b[:])
	now := ref.h.now()
	inv := invitation{User: user, Kind: kind, Expires: now.Add(inviteTTL).UTC()}
	v, _ := json.Marshal(inv)
	if err := ref.store.Stash(ctx, inviteKey(token), v, inviteTTL, now); err != nil {
		return inviteJSON{}, err
	}
	out := inviteJSON{UserID: user, Invite: ref.h.Endpoints + "/invite?token=" + token, ExpiresAt: rfc3339(inv.Expires)}
	if ref.h.BaseURL != "" {
		out.InviteURL = ref.h.BaseURL + out.Invite
	}
	return out, nil
}

// accountRefs are the stores of the sites with stored accounts.
func accountRefs(stores []storeRef) ([]storeRef, []session.Accounts, error) {
	var refs []storeRef
	var parts []session.Accounts
	for _, ref := range stores {
		if ref.h.SignIn == nil || !ref.h.SignIn.Stored {
			continue
		}
		st, err := accountsOf(ref.store)
		if err != nil {
			return nil, nil, storeError(err)
		}
		refs, parts = append(refs, ref), append(parts, st)
	}
	if len(refs) == 0 {
		return nil, nil, apiError(http.StatusNotFound, "no site keeps stored accounts (sign_in { accounts { stored } })")
	}
	return refs, parts, nil
}

// serveAccounts answers /session-auth/accounts[/<id>[/reset]].
func (a adminAPI) serveAccounts(w http.ResponseWriter, r *http.Request, stores []storeRef, segs []string) error {
	refs, parts, err := accountRefs(storesWithAccounts()) // pools_accounts.go
	if err != nil {
		return err
	}
	switch {
	case len(segs) == 1:
		switch r.Method {
		case http.MethodGet:
			return a.listAccounts(w, r, parts)
		case http.MethodPost:
			return a.createAccount(w, r, refs[0], parts[0])
		}
	case len(segs) == 2 || (len(segs) == 3 && segs[2] == "reset"):
		user := userIDOf(segs[1])
		i, acct, err := findAccount(r.Context(), parts, user)
		if err != nil {
			return err
		}
		if len(segs) == 3 {
			if r.Method == http.MethodPost {
				return a.resetAccount(w, r, stores, refs[i], parts[i], user)
			}
			break
		}
		switch r.Method {
		case http.MethodGet:
			return writeJSON(w, http.StatusOK, toAdminAccountJSON(acct))
		case http.MethodPatch:
			return a.patchAccount(w, r, stores, refs[i], parts[i], user)
		case http.MethodDelete:
			return a.deleteAccount(w, r, stores, refs[i], parts[i], user)
		}
	default:
		return apiError(http.StatusNotFound, "no such route: %s", r.URL.Path)
	}
	return apiError(http.StatusMethodNotAllowed, "method %s not allowed here", r.Method)
}

// findAccount finds user's account in the first store that has it.
func findAccount(ctx context.Context, parts []session.Accounts, user string) (int, *session.Account, error) {
	for i, st := range parts {
		acct, err := st.GetAccount(ctx, user)
		if errors.Is(err, session.ErrNotFound) {
			continue
		}
		if err != nil {
			return 0, nil, storeError(err)
		}
		return i, acct, nil
	}
	return 0, nil, apiError(http.StatusNotFound, "no stored account %q", sanitise(user, 64))
}

// listAccounts pages through the stores' accounts, store after store;
// its cursor is the store's index in the config and the store's own.
func (a adminAPI) listAccounts(w http.ResponseWriter, r *http.Request, parts []session.Accounts) error {
	limit, after, err := pageParams(r)
	if err != nil {
		return err
	}
	first, cur := 0, ""
	if after != "" {
		i, rest, ok := strings.Cut(after, "/")
		if first, err = strconv.Atoi(i); !ok || err != nil || first < 0 || first >= len(parts) {
			return errBadCursor
		}
		cur = rest
	}
	out := []adminAccountJSON{}
	next := ""
	for i := first; i < len(parts) && len(out) < limit; i++ {
		page, more, err := parts[i].ListAccounts(r.Context(), cur, limit-len(out))
		if errors.Is(err, session.ErrBadCursor) {
			return errBadCursor
		}
		if err != nil {
			return storeError(err)
		}
		cur = ""
		for _, acct := range page {
			out = append(out, toAdminAccountJSON(acct))
		}
		if more != "" {
			next = strconv.Itoa(i) + "/" + more
			break
		}
	}
	return writePage(w, r, out, next)
}

// accountRequest is the body of POST /session-auth/accounts.
type accountRequest struct {
	UserID string   `json:"user_id"`
	Email  string   `json:"email"`
	Name   string   `json:"name"`
	Roles  roleList `json:"roles"`
}

// decodeBody reads a JSON body of at most 64 KiB with no unknown
// fields; an empty body leaves v as it is when empty is allowed.
func decodeBody(r *http.Request, v any, empty bool) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if empty && errors.Is(err, io.EOF) {
			return nil
		}
		return apiError(http.StatusBadRequest, "bad JSON body: %v", err)
	}
	return nil
}

func splitRoles(roles roleList) []string {
	var out []string
	for _, role := range strings.Split(string(roles), ",") {
		if role = strings.TrimSpace(role); role != "" {
			out = append(out, role)
		}
	}
	return out
}

func accountWriteError(err error) error {
	switch {
	case errors.Is(err, session.ErrAccountExists):
		return apiError(http.StatusConflict, "%v: the user id or the email belongs to another account", err)
	case errors.Is(err, session.ErrBadAccount):
		return apiError(http.StatusBadRequest, "%v", err)
	case errors.Is(err, session.ErrNotFound):
		return apiError(http.StatusNotFound, "no such stored account")
	}
	var api apiErr
	if errors.As(err, &api) {
		return api.err
	}
	return storeError(err)
}

// apiErr carries an admin API answer out of an UpdateAccount's fn.
type apiErr struct{ err error }

func (e apiErr) Error() string { return e.err.Error() }

func (a adminAPI) createAccount(w http.ResponseWriter, r *http.Request, ref storeRef, st session.Accounts) error {
	var req accountRequest
	if err := decodeBody(r, &req, false); err != nil {
		return err
	}
	if err := checkIdentity(req.UserID, req.Email, req.Name, string(req.Roles)); err != nil {
		return apiError(http.StatusBadRequest, "%v", err)
	}
	user := userIDOf(req.UserID)
	if ref.h.signIn.hasOperatorAccount(user) {
		return apiError(http.StatusConflict, "%q is an account of the Caddyfile", sanitise(user, 64))
	}
	acct := &session.Account{UserID: user, Email: req.Email, Name: req.Name, Roles: splitRoles(req.Roles), Stored: true,
		CreatedAt: ref.h.now().UTC()}
	if err := st.CreateAccount(r.Context(), acct); err != nil {
		return accountWriteError(err)
	}
	inv, err := issueInvite(r.Context(), ref, user, "invite")
	if err != nil {
		return storeError(err)
	}
	ref.h.recordAccountEvent(r.Context(), eventAccountCreated, user, session.ActorAdmin, "")
	return writeJSON(w, http.StatusCreated, inv)
}

// accountPatch is the body of PATCH /session-auth/accounts/<id>: the
// fields given change.
type accountPatch struct {
	Email    *string   `json:"email"`
	Name     *string   `json:"name"`
	Roles    *roleList `json:"roles"`
	Disabled *bool     `json:"disabled"`
}

func (a adminAPI) patchAccount(w http.ResponseWriter, r *http.Request, stores []storeRef, ref storeRef, st session.Accounts, user string) error {
	var req accountPatch
	if err := decodeBody(r, &req, false); err != nil {
		return err
	}
	var wasDisabled bool
	acct, err := st.UpdateAccount(r.Context(), user, func(acct *session.Account) error {
		wasDisabled = acct.Disabled
		email, name, roles := acct.Email, acct.Name, strings.Join(acct.Roles, ",")
		if req.Email != nil {
			email = *req.Email
		}
		if req.Name != nil {
			name = *req.Name
		}
		if req.Roles != nil {
			roles = string(*req.Roles)
		}
		if err := checkIdentity(user, email, name, roles); err != nil {
			return apiErr{apiError(http.StatusBadRequest, "%v", err)}
		}
		acct.Email, acct.Name = email, name
		if req.Roles != nil {
			acct.Roles = splitRoles(*req.Roles)
		}
		if req.Disabled != nil {
			acct.Disabled = *req.Disabled
		}
		return nil
	})
	if err != nil {
		return accountWriteError(err)
	}
	switch {
	case acct.Disabled && !wasDisabled:
		if _, err := endAccountSessions(r.Context(), stores, user); err != nil {
			return err
		}
		ref.h.recordAccountEvent(r.Context(), eventAccountDisabled, user, session.ActorAdmin, "")
	case !acct.Disabled && wasDisabled:
		ref.h.recordAccountEvent(r.Context(), eventAccountEnabled, user, session.ActorAdmin, "")
	}
	return writeJSON(w, http.StatusOK, toAdminAccountJSON(acct))
}

func (a adminAPI) deleteAccount(w http.ResponseWriter, r *http.Request, stores []storeRef, ref storeRef, st session.Accounts, user string) error {
	if err := st.DeleteAccount(r.Context(), user); err != nil {
		return accountWriteError(err)
	}
	revoked, err := endAccountSessions(r.Context(), stores, user)
	if err != nil {
		return err
	}
	ref.h.recordAccountEvent(r.Context(), eventAccountDeleted, user, session.ActorAdmin, "")
	return writeJSON(w, http.StatusOK, map[string]any{"deleted": user, "revoked": revoked})
}

// resetRequest is the body of POST …/<id>/reset (it may be empty).
type resetRequest struct {
	SecondFactor bool `json:"second_factor"`
}

// resetAccount removes the password (and with second_factor the TOTP,
// passkeys and recovery codes), ends the account's sessions and tokens
// and answers a new invitation.
func (a adminAPI) resetAccount(w http.ResponseWriter, r *http.Request, stores []storeRef, ref storeRef, st session.Accounts, user string) error {
	var req resetRequest
	if err := decodeBody(r, &req, true); err != nil {
		return err
	}
	_, err := st.UpdateAccount(r.Context(), user, func(acct *session.Account) error {
		acct.PasswordHash = ""
		if req.SecondFactor {
			acct.TOTPSecret, acct.Passkeys, acct.RecoveryCodes = "", nil, nil
		}
		return nil
	})
	if err != nil {
		return accountWriteError(err)
	}
	if _, err := endAccountSessions(r.Context(), stores, user); err != nil {
		return err
	}
	inv, err := issueInvite(r.Context(), ref, user, "reset")
	if err != nil {
		return storeError(err)
	}
	ref.h.recordAccountEvent(r.Context(), eventPasswordReset, user, session.ActorAdmin, "")
	return writeJSON(w, http.StatusOK, inv)
}

// endAccountSessions ends every session and API token of user in every
// store, as DELETE /session-auth/users/<user>/sessions does.
func endAccountSessions(ctx context.Context, stores []storeRef, user string) ([]string, error) {
	revoked := []string{}
	for _, ref := range stores {
		now := ref.h.now()
		ended, err := ref.store.EndUser(ctx, user, "", now, session.EndRevoked, session.ActorAdmin, ref.h.policy)
		if err != nil {
			return nil, storeError(err)
		}
		revoked = append(revoked, adminEnded(ctx, ref, ended, now)...)
	}
	return revoked, nil
}
