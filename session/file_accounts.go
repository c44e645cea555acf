package session

import (
	"bytes"
	"context"
	"encoding/json"

	bolt "go.etcd.io/bbolt"
)

// Accounts in the file store: two buckets, written through the group
// commit like every other write (update), so they are on disk before the
// call returns and share the file's deadline (ErrFileTimeout) and its
// damaged-page rule (ErrFileDamaged, a 503, never a panic). The sweep
// leaves them alone: accounts do not expire.
//
// A record is JSON, not the compact codec of the sessions (file_codec.go):
// accounts are few (people, not sign-ins) and read at sign-in or on the
// account page, never on the request path, and their fields will grow
// with SPEC 15's logic; JSON takes a new field without a codec version.
var (
	bAccounts     = []byte("accounts")      // user id -> Account (JSON)
	bAccountIndex = []byte("account_index") // indexKey (email, handle, passkey id) -> user id
)

func getAccount(tx *bolt.Tx, userID string) (*Account, error) {
	v := tx.Bucket(bAccounts).Get([]byte(userID))
	if v == nil {
		return nil, ErrNotFound
	}
	var a Account
	if err := json.Unmarshal(v, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

func putAccount(tx *bolt.Tx, a *Account) error {
	v, err := json.Marshal(a)
	if err != nil {
		return err
	}
	return tx.Bucket(bAccounts).Put([]byte(a.UserID), v)
}

// takenBy reports whether an index entry names an account other than
// userID.
func takenBy(ix *bolt.Bucket, key, userID string) bool {
	owner := ix.Get([]byte(key))
	return owner != nil && string(owner) != userID
}

// CreateAccount implements Accounts.
func (f *File) CreateAccount(_ context.Context, a *Account) error {
	rec, err := newAccount(a)
	if err != nil {
		return err
	}
	var answer error
	err = f.update(func(tx *bolt.Tx) error {
		// An answer writes nothing and returns nil, so that the group
		// commit does not take it for a failed write.
		answer = nil
		ix := tx.Bucket(bAccountIndex)
		if tx.Bucket(bAccounts).Get([]byte(rec.UserID)) != nil {
			answer = ErrAccountExists
			return nil
		}
		keys := rec.indexKeys()
		for _, k := range keys {
			if ix.Get([]byte(k)) != nil {
				answer = ErrAccountExists
				return nil
			}
		}
		for _, k := range keys {
			if err := ix.Put([]byte(k), []byte(rec.UserID)); err != nil {
				return err
			}
		}
		return putAccount(tx, rec)
	})
	if err != nil {
		return err
	}
	return answer
}

// GetAccount implements Accounts.
func (f *File) GetAccount(_ context.Context, userID string) (*Account, error) {
	return f.readAccount(func(tx *bolt.Tx) (*Account, error) { return getAccount(tx, userID) })
}

// AccountByEmail implements Accounts.
func (f *File) AccountByEmail(_ context.Context, email string) (*Account, error) {
	if email == "" {
		return nil, ErrNotFound
	}
	return f.accountByIndex(indexKey(indexEmail, []byte(EmailKey(email))))
}

// AccountByHandle implements Accounts.
func (f *File) AccountByHandle(_ context.Context, handle []byte) (*Account, error) {
	if len(handle) == 0 {
		return nil, ErrNotFound
	}
	return f.accountByIndex(indexKey(indexHandle, handle))
}

// AccountByPasskey implements Accounts.
func (f *File) AccountByPasskey(_ context.Context, credentialID []byte) (*Account, error) {
	if len(credentialID) == 0 {
		return nil, ErrNotFound
	}
	return f.accountByIndex(indexKey(indexPasskey, credentialID))
}

func (f *File) accountByIndex(key string) (*Account, error) {
	return f.readAccount(func(tx *bolt.Tx) (*Account, error) {
		id := tx.Bucket(bAccountIndex).Get([]byte(key))
		if id == nil {
			return nil, ErrNotFound
		}
		return getAccount(tx, string(id))
	})
}

// readAccount runs read in a read transaction. Accounts are written
// through update alone, never behind, so a read needs no flush first.
func (f *File) readAccount(read func(tx *bolt.Tx) (*Account, error)) (*Account, error) {
	if err := f.ready(); err != nil {
		return nil, err
	}
	var out *Account
	err := f.readView(func(tx *bolt.Tx) error {
		a, err := read(tx)
		out = a
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ListAccounts implements Accounts: the bucket is in user id order.
func (f *File) ListAccounts(_ context.Context, after string, limit int) ([]*Account, string, error) {
	from, err := parseAccountCursor(after)
	if err != nil {
		return nil, "", err
	}
	if err := f.ready(); err != nil {
		return nil, "", err
	}
	var out []*Account
	err = f.readView(func(tx *bolt.Tx) error {
		c := tx.Bucket(bAccounts).Cursor()
		k, v := c.First()
		if from != "" {
			k, v = c.Seek([]byte(from))
			if k != nil && bytes.Equal(k, []byte(from)) {
				k, v = c.Next()
			}
		}
		for ; k != nil && (limit <= 0 || len(out) <= limit); k, v = c.Next() {
			var a Account
			if err := json.Unmarshal(v, &a); err != nil {
				return err
			}
			out = append(out, &a)
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	page, next := accountPage(out, limit)
	return page, next, nil
}

// UpdateAccount implements Accounts: the read, fn and the write are one
// write transaction, which bbolt runs alone.
func (f *File) UpdateAccount(_ context.Context, userID string, fn func(*Account) error) (*Account, error) {
	var out *Account
	var answer error
	err := f.update(func(tx *bolt.Tx) error {
		out, answer = nil, nil
		cur, err := getAccount(tx, userID)
		if err != nil {
			answer = err
			return nil
		}
		next, err := applyUpdate(cur, fn)
		if err != nil {
			answer = err
			return nil
		}
		ix := tx.Bucket(bAccountIndex)
		drop, add := indexChanges(cur, next)
		for _, k := range add {
			if takenBy(ix, k, userID) {
				answer = ErrAccountExists
				return nil
			}
		}
		for _, k := range drop {
			if !takenBy(ix, k, userID) {
				if err := ix.Delete([]byte(k)); err != nil {
					return err
				}
			}
		}
		for _, k := range add {
			if err := ix.Put([]byte(k), []byte(userID)); err != nil {
				return err
			}
		}
		if err := putAccount(tx, next); err != nil {
			return err
		}
		out = next
		return nil
	})
	if err != nil {
		return nil, err
	}
	if answer != nil {
		return nil, answer
	}
	return out, nil
}

// DeleteAccount implements Accounts.
func (f *File) DeleteAccount(_ context.Context, userID string) error {
	var answer error
	err := f.update(func(tx *bolt.Tx) error {
		answer = nil
		cur, err := getAccount(tx, userID)
		if err != nil {
			answer = err
			return nil
		}
		ix := tx.Bucket(bAccountIndex)
		for _, k := range cur.indexKeys() {
			if !takenBy(ix, k, userID) {
				if err := ix.Delete([]byte(k)); err != nil {
					return err
				}
			}
		}
		return tx.Bucket(bAccounts).Delete([]byte(userID))
	})
	if err != nil {
		return err
	}
	return answer
}

var _ Accounts = (*File)(nil)
