// Package accounts is the gateway's local accounts: the list of them,
// the password check (bcrypt or argon2id hashes as `caddy hash-password`
// prints them, an unknown name costing what a known one does) and the
// second factor (TOTP codes, each used once).
//
// It knows nothing of HTTP, sessions or Caddy: the handler asks it
// whether a name and a password, then a code, are right, and does the
// rest (forms, pages, limits, minting).
package accounts

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"slices"
	"time"
)

// Account is a local user.
type Account struct {
	// The user id, as the handler stores and forwards it.
	User string
	// bcrypt or argon2id hash of the password (CheckHash accepts it).
	Hash  string
	Email string
	Name  string
	Roles []string
	// Base32 TOTP secret, as TOTPSecret returns it; empty: no code is
	// asked after the password.
	TOTP string
}

// Ledger counts uses of a key in a window: the handler's session store
// (session.Store's Hit), shared by every gateway of the site, so that a
// TOTP code used on one is refused on the others.
type Ledger interface {
	Hit(ctx context.Context, key string, window time.Duration, now time.Time) (count int64, resetIn time.Duration, err error)
}

// Directory is the accounts of one configuration: what Check and
// CheckTOTP compare with.
type Directory struct {
	byUser map[string]Account
	// An unknown name's password is compared with one of these (unknownHash),
	// picked by nameKey.
	dummies [][]byte
	nameKey []byte
	replays Ledger
	// compare is the comparison; a test sees it.
	compare func(hash []byte, password string) bool
}

// New makes the directory of list (unique user ids, hashes CheckHash
// accepts). nameKey is a secret that picks which dummy hash an unknown
// name is compared with (see Check); replays remembers the TOTP codes
// used.
//
// Each account gets, in the order of the user ids, the dummy hash of its
// class (bcrypt cost, argon2id parameters): an unknown name is compared
// with the dummy of the account its keyed hash picks, so that the costs
// of unknown names are spread as the accounts' are. The same name always
// costs the same (a repeated measurement tells nothing), and without the
// key nobody can say which cost an unknown name will have.
func New(list []Account, nameKey []byte, replays Ledger) *Directory {
	d := &Directory{byUser: make(map[string]Account, len(list)), nameKey: nameKey, replays: replays, compare: comparePassword}
	for _, a := range list {
		d.byUser[a.User] = a
	}
	users := make([]string, 0, len(d.byUser))
	for u := range d.byUser {
		users = append(users, u)
	}
	slices.Sort(users)
	for _, u := range users {
		d.dummies = append(d.dummies, dummyFor(d.byUser[u].Hash))
	}
	return d
}

// Len is how many accounts there are.
func (d *Directory) Len() int {
	if d == nil {
		return 0
	}
	return len(d.byUser)
}

// Lookup returns the account of user.
func (d *Directory) Lookup(user string) (Account, bool) {
	if d == nil {
		return Account{}, false
	}
	a, ok := d.byUser[user]
	return a, ok
}

// Check returns the account name names when password is its password.
// An unknown name's password is compared all the same, with a dummy hash
// of the cost of an account's (unknownHash), so that the answer takes as
// long either way.
func (d *Directory) Check(name, password string) (Account, bool) {
	a, known := d.Lookup(name)
	hash := []byte(a.Hash)
	if !known {
		hash = d.unknownHash(name)
	}
	if !d.compare(hash, password) || !known {
		return Account{}, false
	}
	return a, true
}

// unknownHash is the dummy an unknown name is compared with.
func (d *Directory) unknownHash(name string) []byte {
	if len(d.dummies) == 0 {
		return nil
	}
	mac := hmac.New(sha256.New, d.nameKey)
	mac.Write([]byte(name))
	return d.dummies[binary.BigEndian.Uint64(mac.Sum(nil))%uint64(len(d.dummies))]
}
