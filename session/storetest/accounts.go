package storetest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessionauth/caddy-sessionauth/session"
)

// RunAccounts runs the accounts part's suite (SPEC 15) against stores
// made by newStore, which must keep accounts (session.Accounts). Every
// case uses user ids and emails of its own, so stores may be shared.
func RunAccounts(t *testing.T, newStore Factory) {
	cases := []struct {
		name string
		fn   func(t *testing.T, st session.Accounts, c *Clock)
	}{
		{"CreateGet", testAccountCreateGet},
		{"CreateTaken", testAccountTaken},
		{"CreateBadInput", testAccountBadInput},
		{"Lookups", testAccountLookups},
		{"ListPages", testAccountList},
		{"UpdateKeepsIndices", testAccountUpdateIndices},
		{"UpdateRefusesWhatOthersHold", testAccountUpdateTaken},
		{"UpdateAbortsOnError", testAccountUpdateAbort},
		{"UpdateFixedFields", testAccountUpdateFixed},
		{"SignCountNeverGoesBack", testAccountSignCount},
		{"UpdatesConcurrentAllApply", testAccountConcurrentDistinct},
		{"SameRecoveryCodeUsedOnce", testAccountConcurrentSame},
		{"DeleteDropsIndices", testAccountDelete},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := NewClock()
			st, ok := newStore(t, c.Now).(session.Accounts)
			if !ok {
				t.Fatal("the store keeps no accounts (session.Accounts)")
			}
			tc.fn(t, st, c)
		})
	}
}

// newAccount returns a stored account of a fresh user id and email,
// with one passkey (its id fresh too), not yet created.
func newAccount(c *Clock) *session.Account {
	uid := user()
	at := c.Now().UTC()
	return &session.Account{
		UserID: uid, Email: uid + "@Example.COM", Name: "Ada " + uid,
		Roles:         []string{"admin", "ops"},
		PasswordHash:  "$argon2id$v=19$m=65536,t=1,p=4$c2FsdA$aGFzaA",
		TOTPSecret:    "JBSWY3DPEHPK3PXP",
		RecoveryCodes: []string{"h1", "h2", "h3"},
		Passkeys:      []session.Passkey{newPasskey(at, "laptop")},
		Stored:        true,
		CreatedAt:     at,
	}
}

func newPasskey(at time.Time, name string) session.Passkey {
	return session.Passkey{
		ID: []byte(user() + "\x00\xff"), Name: name, PublicKey: []byte{0xa5, 1, 2, 3, 0},
		AttestationType: "none", AttestationFormat: "packed",
		SignCount: 7, AAGUID: bytes.Repeat([]byte{0xad}, 16), Attachment: "platform",
		Transports:  []string{"internal", "hybrid"},
		UserPresent: true, UserVerified: true, BackupEligible: true, BackupState: true,
		AddedAt: at, LastUsedAt: at.Add(time.Minute),
	}
}

func createAccount(t *testing.T, st session.Accounts, a *session.Account) *session.Account {
	t.Helper()
	if err := st.CreateAccount(ctx(t), a); err != nil {
		t.Fatalf("create %s: %v", a.UserID, err)
	}
	return a
}

// sameAccount fails unless got holds what want does.
func sameAccount(t *testing.T, got, want *session.Account) {
	t.Helper()
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if !bytes.Equal(g, w) {
		t.Fatalf("account:\n got %s\nwant %s", g, w)
	}
}

func wantErr(t *testing.T, err, want error, what string) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got %v, want %v", what, err, want)
	}
}

func testAccountCreateGet(t *testing.T, st session.Accounts, c *Clock) {
	a := newAccount(c)
	a.LastSignInAt = c.Now().UTC().Add(time.Hour)
	a.Disabled = true
	createAccount(t, st, a)
	if len(a.Handle) != 32 || a.Version != 1 {
		t.Fatalf("create set handle %x, version %d", a.Handle, a.Version)
	}
	got, err := st.GetAccount(ctx(t), a.UserID)
	if err != nil {
		t.Fatal(err)
	}
	sameAccount(t, got, a)
	// The record returned is the caller's to change.
	got.Roles[0], got.Passkeys[0].ID[0] = "x", 'x'
	again, err := st.GetAccount(ctx(t), a.UserID)
	if err != nil {
		t.Fatal(err)
	}
	sameAccount(t, again, a)

	// Two accounts get different handles; a handle given is kept.
	b := newAccount(c)
	b.Handle = bytes.Repeat([]byte{1}, 32)
	b.Handle[0] = byte(len(b.UserID))
	copy(b.Handle[1:], b.UserID)
	createAccount(t, st, b)
	if got, err := st.GetAccount(ctx(t), b.UserID); err != nil || !bytes.Equal(got.Handle, b.Handle) {
		t.Fatalf("given handle: %v", err)
	}
	_, err = st.GetAccount(ctx(t), user())
	wantErr(t, err, session.ErrNotFound, "unknown user")
}

func testAccountTaken(t *testing.T, st session.Accounts, c *Clock) {
	a := createAccount(t, st, newAccount(c))

	dup := newAccount(c)
	dup.UserID = a.UserID
	wantErr(t, st.CreateAccount(ctx(t), dup), session.ErrAccountExists, "same user id")

	byEmail := newAccount(c)
	byEmail.Email = strings.ToUpper(a.Email)
	wantErr(t, st.CreateAccount(ctx(t), byEmail), session.ErrAccountExists, "same email, other case")

	byHandle := newAccount(c)
	byHandle.Handle = a.Handle
	wantErr(t, st.CreateAccount(ctx(t), byHandle), session.ErrAccountExists, "same handle")

	byPasskey := newAccount(c)
	byPasskey.Passkeys = append(byPasskey.Passkeys, a.Passkeys[0])
	wantErr(t, st.CreateAccount(ctx(t), byPasskey), session.ErrAccountExists, "a passkey another account holds")

	// None of the refused left anything behind: their ids, emails and
	// passkeys are free.
	for _, r := range []*session.Account{byEmail, byHandle, byPasskey} {
		_, err := st.GetAccount(ctx(t), r.UserID)
		wantErr(t, err, session.ErrNotFound, "a refused account")
	}
	free := newAccount(c)
	free.UserID = byPasskey.UserID
	free.Email = byPasskey.Email
	free.Passkeys = byPasskey.Passkeys[:1]
	createAccount(t, st, free)

	// Accounts without an email do not collide on it.
	for range 2 {
		n := newAccount(c)
		n.Email = ""
		createAccount(t, st, n)
	}
	if got, err := st.GetAccount(ctx(t), a.UserID); err != nil || got.Email != a.Email {
		t.Fatalf("the first account changed: %v", err)
	}
}

func testAccountBadInput(t *testing.T, st session.Accounts, c *Clock) {
	wantErr(t, st.CreateAccount(ctx(t), nil), session.ErrBadAccount, "nil")
	noID := newAccount(c)
	noID.UserID = ""
	wantErr(t, st.CreateAccount(ctx(t), noID), session.ErrBadAccount, "no user id")
	long := newAccount(c)
	long.UserID = strings.Repeat("u", 1000)
	wantErr(t, st.CreateAccount(ctx(t), long), session.ErrBadAccount, "a user id of 1000 bytes")
	noKey := newAccount(c)
	noKey.Passkeys[0].ID = nil
	wantErr(t, st.CreateAccount(ctx(t), noKey), session.ErrBadAccount, "a passkey without an id")
	twice := newAccount(c)
	twice.Passkeys = append(twice.Passkeys, twice.Passkeys[0])
	wantErr(t, st.CreateAccount(ctx(t), twice), session.ErrAccountExists, "a passkey twice in one account")
	for _, a := range []*session.Account{noKey, twice} {
		_, err := st.GetAccount(ctx(t), a.UserID)
		wantErr(t, err, session.ErrNotFound, "a refused account")
	}
}

func testAccountLookups(t *testing.T, st session.Accounts, c *Clock) {
	a := newAccount(c)
	a.Passkeys = append(a.Passkeys, newPasskey(c.Now().UTC(), "phone"))
	createAccount(t, st, a)
	b := createAccount(t, st, newAccount(c))

	for _, email := range []string{a.Email, strings.ToLower(a.Email), strings.ToUpper(a.Email)} {
		got, err := st.AccountByEmail(ctx(t), email)
		if err != nil || got.UserID != a.UserID {
			t.Fatalf("by email %q: %v %v", email, got, err)
		}
	}
	if got, err := st.AccountByHandle(ctx(t), b.Handle); err != nil || got.UserID != b.UserID {
		t.Fatalf("by handle: %v", err)
	}
	for _, p := range a.Passkeys {
		got, err := st.AccountByPasskey(ctx(t), p.ID)
		if err != nil {
			t.Fatalf("by passkey %s: %v", p.Name, err)
		}
		sameAccount(t, got, a)
	}
	_, err := st.AccountByEmail(ctx(t), user()+"@example.com")
	wantErr(t, err, session.ErrNotFound, "unknown email")
	_, err = st.AccountByEmail(ctx(t), "")
	wantErr(t, err, session.ErrNotFound, "no email")
	_, err = st.AccountByHandle(ctx(t), []byte(user()))
	wantErr(t, err, session.ErrNotFound, "unknown handle")
	_, err = st.AccountByHandle(ctx(t), nil)
	wantErr(t, err, session.ErrNotFound, "no handle")
	_, err = st.AccountByPasskey(ctx(t), []byte(user()))
	wantErr(t, err, session.ErrNotFound, "unknown passkey")
	_, err = st.AccountByPasskey(ctx(t), a.Passkeys[0].ID[:len(a.Passkeys[0].ID)-1])
	wantErr(t, err, session.ErrNotFound, "a passkey id's prefix")
}

func testAccountList(t *testing.T, st session.Accounts, c *Clock) {
	base := user()
	var want []string
	for i := range 7 {
		a := newAccount(c)
		a.UserID = fmt.Sprintf("%s-%d", base, 6-i) // created out of order
		a.Email = a.UserID + "@example.com"
		createAccount(t, st, a)
		want = append(want, a.UserID)
	}
	slices.Sort(want)

	var all []string
	after, pages := "", 0
	for {
		page, next, err := st.ListAccounts(ctx(t), after, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) > 3 || (next != "" && len(page) != 3) {
			t.Fatalf("a page of %d, next %q", len(page), next)
		}
		for _, a := range page {
			all = append(all, a.UserID)
		}
		pages++
		if next == "" {
			break
		}
		if pages > 1000 {
			t.Fatal("the pages do not end")
		}
		after = next
	}
	if !slices.IsSorted(all) || len(slices.Compact(slices.Clone(all))) != len(all) {
		t.Fatalf("not in user id order, or repeated: %v", all)
	}
	var mine []string
	for _, id := range all {
		if strings.HasPrefix(id, base+"-") {
			mine = append(mine, id)
		}
	}
	if !slices.Equal(mine, want) {
		t.Fatalf("listed %v, want %v", mine, want)
	}
	everything, next, err := st.ListAccounts(ctx(t), "", 0)
	if err != nil || next != "" || len(everything) != len(all) {
		t.Fatalf("limit 0: %d accounts, next %q, %v; paged %d", len(everything), next, err, len(all))
	}
	for _, bad := range []string{"garbage", "a.!!", "a."} {
		_, _, err := st.ListAccounts(ctx(t), bad, 3)
		wantErr(t, err, session.ErrBadCursor, "position "+bad)
	}
}

func testAccountUpdateIndices(t *testing.T, st session.Accounts, c *Clock) {
	a := newAccount(c)
	a.Passkeys = append(a.Passkeys, newPasskey(c.Now().UTC(), "phone"))
	createAccount(t, st, a)
	oldEmail, gone, kept := a.Email, a.Passkeys[0], a.Passkeys[1]
	added := newPasskey(c.Now().UTC(), "key")
	newEmail := "New." + user() + "@Example.org"

	got, err := st.UpdateAccount(ctx(t), a.UserID, func(a *session.Account) error {
		a.Email = newEmail
		a.Passkeys = append(a.Passkeys[1:], added)
		a.RecoveryCodes = nil
		a.Name = "Ada L."
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != 2 || got.Email != newEmail || len(got.Passkeys) != 2 || got.Name != "Ada L." || got.RecoveryCodes != nil {
		t.Fatalf("update returned %+v", got)
	}
	stored, err := st.GetAccount(ctx(t), a.UserID)
	if err != nil {
		t.Fatal(err)
	}
	sameAccount(t, stored, got)

	_, err = st.AccountByEmail(ctx(t), oldEmail)
	wantErr(t, err, session.ErrNotFound, "the old email")
	if b, err := st.AccountByEmail(ctx(t), strings.ToUpper(newEmail)); err != nil || b.UserID != a.UserID {
		t.Fatalf("the new email: %v", err)
	}
	_, err = st.AccountByPasskey(ctx(t), gone.ID)
	wantErr(t, err, session.ErrNotFound, "the removed passkey")
	for _, p := range []session.Passkey{kept, added} {
		if b, err := st.AccountByPasskey(ctx(t), p.ID); err != nil || b.UserID != a.UserID {
			t.Fatalf("passkey %s: %v", p.Name, err)
		}
	}
	// What the account gave up is free for another.
	other := newAccount(c)
	other.Email = strings.ToLower(oldEmail)
	other.Passkeys = []session.Passkey{gone}
	createAccount(t, st, other)

	// Changing only the email's case keeps it findable.
	if _, err := st.UpdateAccount(ctx(t), a.UserID, func(a *session.Account) error {
		a.Email = strings.ToLower(a.Email)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if b, err := st.AccountByEmail(ctx(t), newEmail); err != nil || b.UserID != a.UserID || b.Version != 3 {
		t.Fatalf("after a change of case: %v %v", b, err)
	}
	// Removing the email drops it.
	if _, err := st.UpdateAccount(ctx(t), a.UserID, func(a *session.Account) error { a.Email = ""; return nil }); err != nil {
		t.Fatal(err)
	}
	_, err = st.AccountByEmail(ctx(t), newEmail)
	wantErr(t, err, session.ErrNotFound, "a removed email")

	_, err = st.UpdateAccount(ctx(t), user(), func(*session.Account) error { return nil })
	wantErr(t, err, session.ErrNotFound, "update of an unknown user")
}

func testAccountUpdateTaken(t *testing.T, st session.Accounts, c *Clock) {
	a := createAccount(t, st, newAccount(c))
	b := createAccount(t, st, newAccount(c))
	_, err := st.UpdateAccount(ctx(t), b.UserID, func(x *session.Account) error {
		x.Email = strings.ToUpper(a.Email)
		return nil
	})
	wantErr(t, err, session.ErrAccountExists, "another account's email")
	_, err = st.UpdateAccount(ctx(t), b.UserID, func(x *session.Account) error {
		x.Passkeys = append(x.Passkeys, a.Passkeys[0])
		x.Name = "changed"
		return nil
	})
	wantErr(t, err, session.ErrAccountExists, "another account's passkey")
	got, err := st.GetAccount(ctx(t), b.UserID)
	if err != nil {
		t.Fatal(err)
	}
	sameAccount(t, got, b) // nothing written
	if x, err := st.AccountByPasskey(ctx(t), a.Passkeys[0].ID); err != nil || x.UserID != a.UserID {
		t.Fatalf("the passkey moved: %v %v", x, err)
	}
	if x, err := st.AccountByEmail(ctx(t), a.Email); err != nil || x.UserID != a.UserID {
		t.Fatalf("the email moved: %v %v", x, err)
	}
}

var errRefused = errors.New("refused by fn")

func testAccountUpdateAbort(t *testing.T, st session.Accounts, c *Clock) {
	a := createAccount(t, st, newAccount(c))
	_, err := st.UpdateAccount(ctx(t), a.UserID, func(x *session.Account) error {
		x.Email = user() + "@example.net"
		x.RecoveryCodes = nil
		return fmt.Errorf("wrapped: %w", errRefused)
	})
	wantErr(t, err, errRefused, "fn's error")
	got, err := st.GetAccount(ctx(t), a.UserID)
	if err != nil {
		t.Fatal(err)
	}
	sameAccount(t, got, a)
	if x, err := st.AccountByEmail(ctx(t), a.Email); err != nil || x.UserID != a.UserID {
		t.Fatalf("email after an aborted update: %v", err)
	}
}

func testAccountUpdateFixed(t *testing.T, st session.Accounts, c *Clock) {
	a := createAccount(t, st, newAccount(c))
	_, err := st.UpdateAccount(ctx(t), a.UserID, func(x *session.Account) error { x.UserID = user(); return nil })
	wantErr(t, err, session.ErrBadAccount, "a new user id")
	_, err = st.UpdateAccount(ctx(t), a.UserID, func(x *session.Account) error { x.Handle = []byte("other"); return nil })
	wantErr(t, err, session.ErrBadAccount, "a new handle")
	_, err = st.UpdateAccount(ctx(t), a.UserID, func(x *session.Account) error { x.Passkeys[0].ID = nil; return nil })
	wantErr(t, err, session.ErrBadAccount, "a passkey without an id")
	got, err := st.UpdateAccount(ctx(t), a.UserID, func(x *session.Account) error {
		x.CreatedAt = time.Unix(0, 0)
		x.Version = 100
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !got.CreatedAt.Equal(a.CreatedAt) || got.Version != 2 {
		t.Fatalf("created %v, version %d", got.CreatedAt, got.Version)
	}
}

func testAccountSignCount(t *testing.T, st session.Accounts, c *Clock) {
	a := createAccount(t, st, newAccount(c))
	set := func(n uint32) *session.Account {
		t.Helper()
		got, err := st.UpdateAccount(ctx(t), a.UserID, func(x *session.Account) error {
			x.Passkeys[0].SignCount = n
			x.Passkeys[0].LastUsedAt = c.Now().UTC()
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := set(42); got.Passkeys[0].SignCount != 42 {
		t.Fatalf("count %d, want 42", got.Passkeys[0].SignCount)
	}
	if got := set(5); got.Passkeys[0].SignCount != 42 {
		t.Fatalf("count went back to %d", got.Passkeys[0].SignCount)
	}
	stored, err := st.GetAccount(ctx(t), a.UserID)
	if err != nil || stored.Passkeys[0].SignCount != 42 {
		t.Fatalf("stored count: %v", err)
	}
}

// useCode removes one recovery code hash, or fails when it is gone.
func useCode(code string) func(*session.Account) error {
	return func(a *session.Account) error {
		i := slices.Index(a.RecoveryCodes, code)
		if i < 0 {
			return errRefused
		}
		a.RecoveryCodes = slices.Delete(a.RecoveryCodes, i, i+1)
		return nil
	}
}

func testAccountConcurrentDistinct(t *testing.T, st session.Accounts, c *Clock) {
	a := newAccount(c)
	const n = 10
	a.RecoveryCodes = nil
	for i := range n {
		a.RecoveryCodes = append(a.RecoveryCodes, fmt.Sprintf("code-%d", i))
	}
	createAccount(t, st, a)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = st.UpdateAccount(ctx(t), a.UserID, useCode(fmt.Sprintf("code-%d", i)))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("update %d: %v", i, err)
		}
	}
	got, err := st.GetAccount(ctx(t), a.UserID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.RecoveryCodes) != 0 || got.Version != 1+n {
		t.Fatalf("codes left %v, version %d: an update was lost", got.RecoveryCodes, got.Version)
	}
}

func testAccountConcurrentSame(t *testing.T, st session.Accounts, c *Clock) {
	a := createAccount(t, st, newAccount(c))
	const n = 10
	var wins, refused atomic.Int32
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := st.UpdateAccount(ctx(t), a.UserID, useCode("h2"))
			switch {
			case err == nil:
				wins.Add(1)
			case errors.Is(err, errRefused):
				refused.Add(1)
			default:
				t.Errorf("update: %v", err)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 || refused.Load() != n-1 {
		t.Fatalf("%d used the code, %d were refused", wins.Load(), refused.Load())
	}
	got, err := st.GetAccount(ctx(t), a.UserID)
	if err != nil || !slices.Equal(got.RecoveryCodes, []string{"h1", "h3"}) {
		t.Fatalf("codes left: %v %v", got, err)
	}
}

func testAccountDelete(t *testing.T, st session.Accounts, c *Clock) {
	a := createAccount(t, st, newAccount(c))
	b := createAccount(t, st, newAccount(c))
	if err := st.DeleteAccount(ctx(t), a.UserID); err != nil {
		t.Fatal(err)
	}
	_, err := st.GetAccount(ctx(t), a.UserID)
	wantErr(t, err, session.ErrNotFound, "a deleted account")
	_, err = st.AccountByEmail(ctx(t), a.Email)
	wantErr(t, err, session.ErrNotFound, "a deleted account's email")
	_, err = st.AccountByHandle(ctx(t), a.Handle)
	wantErr(t, err, session.ErrNotFound, "a deleted account's handle")
	_, err = st.AccountByPasskey(ctx(t), a.Passkeys[0].ID)
	wantErr(t, err, session.ErrNotFound, "a deleted account's passkey")
	wantErr(t, st.DeleteAccount(ctx(t), a.UserID), session.ErrNotFound, "deleted twice")
	_, err = st.UpdateAccount(ctx(t), a.UserID, func(*session.Account) error { return nil })
	wantErr(t, err, session.ErrNotFound, "update of a deleted account")
	page, _, err := st.ListAccounts(ctx(t), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range page {
		if x.UserID == a.UserID {
			t.Fatal("a deleted account is listed")
		}
	}
	if x, err := st.GetAccount(ctx(t), b.UserID); err != nil || x.UserID != b.UserID {
		t.Fatalf("the other account: %v", err)
	}

	// The user id, email and passkey are free again; the new account gets
	// a handle of its own.
	again := newAccount(c)
	again.UserID, again.Email, again.Passkeys = a.UserID, a.Email, a.Passkeys
	createAccount(t, st, again)
	if bytes.Equal(again.Handle, a.Handle) {
		t.Fatal("the new account has the old handle")
	}
}
