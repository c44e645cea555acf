package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// Accounts in Redis. Every account key is under one hash tag,
// {accounts}, so that each operation is one script on one cluster slot
// whatever it touches: the record, and the index entries of its email,
// handle and passkeys, which another account may hold. Per-account tags
// would leave the indices in other slots, where no script can check an
// email is free and take it in one step. One slot is right for accounts:
// they are people, few beside the sessions, and read at sign-in only.
//
//	<prefix>{accounts}:a  hash: user id -> the account (JSON, as the file store)
//	<prefix>{accounts}:i  hash: index entry (indexKey) -> user id
//	<prefix>{accounts}:l  sorted set: the user ids, all scored 0, for ListAccounts in id order
//
// These keys have no TTL (accounts do not expire): under a volatile-*
// maxmemory-policy Redis never evicts them, under allkeys-* it may (the
// store warns at connect for any policy but noeviction).
//
// UpdateAccount runs the caller's function in Go, between a read and a
// script that writes only if the record is still what was read (a
// compare-and-set on its bytes); otherwise it reads again. The commands
// the scripts run (HGET, HSET, HDEL, ZADD, ZREM, ZRANGE) are those the
// sessions' scripts use, so RedisACL needs nothing more.

func (r *Redis) accountKeys() (records, index, ids string) {
	p := r.prefix + "{accounts}:"
	return p + "a", p + "i", p + "l"
}

// maxAccountTries bounds UpdateAccount's reads when other writes keep
// coming between its read and its write: each round, one of the writers
// wins, so this many covers as many concurrent writers of one account.
const maxAccountTries = 100

// The scripts' answers.
const (
	accountOK     = "ok"
	accountExists = "exists"
	accountGone   = "gone"
	accountStale  = "stale"
)

// KEYS: records, index, ids. ARGV: user id, record, index entries.
var accountCreateScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], ARGV[1]) then return 'exists' end
for i = 3, #ARGV do
  if redis.call('HGET', KEYS[2], ARGV[i]) then return 'exists' end
end
for i = 3, #ARGV do redis.call('HSET', KEYS[2], ARGV[i], ARGV[1]) end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[3], 0, ARGV[1])
return 'ok'
`)

// KEYS: records, index. ARGV: user id, the record as read, the record to
// write, the number of index entries to drop, those, the entries to add.
var accountUpdateScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then return 'gone' end
if cur ~= ARGV[2] then return 'stale' end
local drop = tonumber(ARGV[4])
for i = 5 + drop, #ARGV do
  local owner = redis.call('HGET', KEYS[2], ARGV[i])
  if owner and owner ~= ARGV[1] then return 'exists' end
end
for i = 5, 4 + drop do
  if redis.call('HGET', KEYS[2], ARGV[i]) == ARGV[1] then redis.call('HDEL', KEYS[2], ARGV[i]) end
end
for i = 5 + drop, #ARGV do redis.call('HSET', KEYS[2], ARGV[i], ARGV[1]) end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 'ok'
`)

// KEYS: records, index, ids. ARGV: user id, the record as read, its
// index entries.
var accountDeleteScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then return 'gone' end
if cur ~= ARGV[2] then return 'stale' end
for i = 3, #ARGV do
  if redis.call('HGET', KEYS[2], ARGV[i]) == ARGV[1] then redis.call('HDEL', KEYS[2], ARGV[i]) end
end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return 'ok'
`)

// KEYS: records, index. ARGV: an index entry. The record it names.
var accountLookupScript = redis.NewScript(`
local id = redis.call('HGET', KEYS[2], ARGV[1])
if not id then return false end
return redis.call('HGET', KEYS[1], id)
`)

// KEYS: records, ids. ARGV: the lowest id (ZRANGE BYLEX), how many (-1:
// all). The records, in id order.
var accountListScript = redis.NewScript(`
local ids = redis.call('ZRANGE', KEYS[2], ARGV[1], '+', 'BYLEX', 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for _, id in ipairs(ids) do
  local v = redis.call('HGET', KEYS[1], id)
  if v then out[#out + 1] = v end
end
return out
`)

func decodeAccount(raw string) (*Account, error) {
	var a Account
	if err := json.Unmarshal([]byte(raw), &a); err != nil {
		return nil, fmt.Errorf("reading account: %w", err)
	}
	return &a, nil
}

func stringArgs(head []any, ss ...[]string) []any {
	for _, s := range ss {
		for _, v := range s {
			head = append(head, v)
		}
	}
	return head
}

// CreateAccount implements Accounts.
func (r *Redis) CreateAccount(ctx context.Context, a *Account) error {
	rec, err := newAccount(a)
	if err != nil {
		return err
	}
	v, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	records, index, ids := r.accountKeys()
	res, err := accountCreateScript.Run(ctx, r.client, []string{records, index, ids},
		stringArgs([]any{rec.UserID, string(v)}, rec.indexKeys())...).Text()
	if err != nil {
		return fmt.Errorf("creating account: %w", err)
	}
	if res == accountExists {
		return ErrAccountExists
	}
	return nil
}

// GetAccount implements Accounts.
func (r *Redis) GetAccount(ctx context.Context, userID string) (*Account, error) {
	records, _, _ := r.accountKeys()
	raw, err := r.client.HGet(ctx, records, userID).Result()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("reading account: %w", err)
	}
	return decodeAccount(raw)
}

// AccountByEmail implements Accounts.
func (r *Redis) AccountByEmail(ctx context.Context, email string) (*Account, error) {
	if email == "" {
		return nil, ErrNotFound
	}
	return r.accountByIndex(ctx, indexKey(indexEmail, []byte(EmailKey(email))))
}

// AccountByHandle implements Accounts.
func (r *Redis) AccountByHandle(ctx context.Context, handle []byte) (*Account, error) {
	if len(handle) == 0 {
		return nil, ErrNotFound
	}
	return r.accountByIndex(ctx, indexKey(indexHandle, handle))
}

// AccountByPasskey implements Accounts.
func (r *Redis) AccountByPasskey(ctx context.Context, credentialID []byte) (*Account, error) {
	if len(credentialID) == 0 {
		return nil, ErrNotFound
	}
	return r.accountByIndex(ctx, indexKey(indexPasskey, credentialID))
}

// accountByIndex reads the entry and its record in one script.
func (r *Redis) accountByIndex(ctx context.Context, key string) (*Account, error) {
	records, index, _ := r.accountKeys()
	raw, err := accountLookupScript.Run(ctx, r.client, []string{records, index}, key).Text()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("finding account: %w", err)
	}
	return decodeAccount(raw)
}

// ListAccounts implements Accounts.
func (r *Redis) ListAccounts(ctx context.Context, after string, limit int) ([]*Account, string, error) {
	from, err := parseAccountCursor(after)
	if err != nil {
		return nil, "", err
	}
	low, n := "-", -1
	if from != "" {
		low = "(" + from
	}
	if limit > 0 {
		n = limit + 1 // one more tells whether a next page follows
	}
	records, _, ids := r.accountKeys()
	raws, err := accountListScript.Run(ctx, r.client, []string{records, ids}, low, n).StringSlice()
	if err != nil {
		return nil, "", fmt.Errorf("listing accounts: %w", err)
	}
	out := make([]*Account, 0, len(raws))
	for _, raw := range raws {
		a, err := decodeAccount(raw)
		if err != nil {
			return nil, "", err
		}
		out = append(out, a)
	}
	page, next := accountPage(out, limit)
	return page, next, nil
}

// UpdateAccount implements Accounts: read, fn, and a script that writes
// only if the record is still what was read; else again.
func (r *Redis) UpdateAccount(ctx context.Context, userID string, fn func(*Account) error) (*Account, error) {
	records, index, _ := r.accountKeys()
	for range maxAccountTries {
		raw, err := r.client.HGet(ctx, records, userID).Result()
		if errors.Is(err, redis.Nil) {
			return nil, ErrNotFound
		}
		if err != nil {
			return nil, fmt.Errorf("reading account: %w", err)
		}
		cur, err := decodeAccount(raw)
		if err != nil {
			return nil, err
		}
		next, err := applyUpdate(cur, fn)
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(next)
		if err != nil {
			return nil, err
		}
		drop, add := indexChanges(cur, next)
		res, err := accountUpdateScript.Run(ctx, r.client, []string{records, index},
			stringArgs([]any{userID, raw, string(v), len(drop)}, drop, add)...).Text()
		if err != nil {
			return nil, fmt.Errorf("updating account: %w", err)
		}
		switch res {
		case accountOK:
			return next, nil
		case accountGone:
			return nil, ErrNotFound
		case accountExists:
			return nil, ErrAccountExists
		case accountStale: // another write came between: read again
		default:
			return nil, fmt.Errorf("updating account: unexpected answer %q", res)
		}
	}
	return nil, ErrAccountBusy
}

// DeleteAccount implements Accounts.
func (r *Redis) DeleteAccount(ctx context.Context, userID string) error {
	records, index, ids := r.accountKeys()
	for range maxAccountTries {
		raw, err := r.client.HGet(ctx, records, userID).Result()
		if errors.Is(err, redis.Nil) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("reading account: %w", err)
		}
		cur, err := decodeAccount(raw)
		if err != nil {
			return err
		}
		res, err := accountDeleteScript.Run(ctx, r.client, []string{records, index, ids},
			stringArgs([]any{userID, raw}, cur.indexKeys())...).Text()
		if err != nil {
			return fmt.Errorf("deleting account: %w", err)
		}
		switch res {
		case accountOK:
			return nil
		case accountGone:
			return ErrNotFound
		case accountStale: // another write came between: read again
		default:
			return fmt.Errorf("deleting account: unexpected answer %q", res)
		}
	}
	return ErrAccountBusy
}

var _ Accounts = (*Redis)(nil)
