package accounts

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// Account passwords are bcrypt or argon2id hashes, as `caddy hash-password`
// prints them (--algorithm bcrypt, the default, or argon2id).

// BcryptMaxPassword is all bcrypt reads of a password: a longer one is
// refused at sign-in rather than cut, so that it never matches the
// account whose password is its first 72 bytes. `caddy hash-password`
// refuses to hash one, so no account can have one.
const BcryptMaxPassword = 72

// Bounds on argon2id's parameters: a hash is the operator's, but a typo
// in one must not make every sign-in allocate gigabytes.
const (
	argon2MaxMemory = 1 << 20 // KiB: 1 GiB
	argon2MaxTime   = 64
	argon2MinKey    = 16
	argon2MinSalt   = 8
)

// CheckHash says, in words, why hash is not one `caddy hash-password`
// prints; nil when it is.
func CheckHash(hash string) error {
	const how = "must be a bcrypt or argon2id hash as `caddy hash-password` prints it"
	switch {
	case strings.HasPrefix(hash, "$2a$"), strings.HasPrefix(hash, "$2b$"), strings.HasPrefix(hash, "$2y$"):
		cost, err := strconv.Atoi(hash[4:min(len(hash), 6)])
		if err != nil || len(hash) != 60 || hash[6] != '$' {
			return fmt.Errorf("the password %s: this bcrypt hash is cut short or has extra characters", how)
		}
		if cost < bcrypt.MinCost || cost > bcrypt.MaxCost {
			return fmt.Errorf("the password's bcrypt cost %d is not between %d and %d", cost, bcrypt.MinCost, bcrypt.MaxCost)
		}
		if strings.Trim(hash[7:], "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") != "" {
			return fmt.Errorf("the password %s: this bcrypt hash has characters no bcrypt hash has", how)
		}
		return nil
	case strings.HasPrefix(hash, "$argon2id$"):
		a, err := decodeArgon2id(hash)
		if err != nil {
			return fmt.Errorf("the password %s: this argon2id hash does not read (%v)", how, err)
		}
		switch {
		case a.memory == 0 || a.time == 0 || a.threads == 0:
			return fmt.Errorf("the password's argon2id hash needs m, t and p of at least 1")
		case a.memory > argon2MaxMemory:
			return fmt.Errorf("the password's argon2id hash asks for %d KiB of memory per sign-in; at most %d are accepted", a.memory, argon2MaxMemory)
		case a.time > argon2MaxTime:
			return fmt.Errorf("the password's argon2id hash asks for %d iterations; at most %d are accepted", a.time, argon2MaxTime)
		case len(a.key) < argon2MinKey || len(a.salt) < argon2MinSalt:
			return fmt.Errorf("the password's argon2id hash has a key shorter than %d bytes or a salt shorter than %d", argon2MinKey, argon2MinSalt)
		}
		return nil
	}
	return fmt.Errorf("the password %s (it starts with $2a$, $2b$, $2y$ or $argon2id$)", how)
}

// argon2idHash is an argon2id PHC string read: what `caddy hash-password
// --algorithm argon2id` writes, $argon2id$v=19$m=…,t=…,p=…$salt$key.
type argon2idHash struct {
	memory, time uint32
	threads      uint8
	salt, key    []byte
}

// decodeArgon2id reads hash as Caddy's caddyauth.DecodeHash does, with
// the same refusals and the same words for them.
func decodeArgon2id(hash string) (argon2idHash, error) {
	var a argon2idHash
	parts := strings.Split(hash, "$")
	if len(parts) != 6 {
		return a, errors.New("invalid hash format")
	}
	if parts[1] != "argon2id" {
		return a, fmt.Errorf("unsupported variant: %s", parts[1])
	}
	version, err := strconv.Atoi(strings.TrimPrefix(parts[2], "v="))
	if err != nil {
		return a, fmt.Errorf("invalid version: %w", err)
	}
	if version != argon2.Version {
		return a, fmt.Errorf("incompatible version: %d", version)
	}
	params := strings.Split(parts[3], ",")
	if len(params) != 3 {
		return a, errors.New("invalid parameters")
	}
	m, err := strconv.ParseUint(strings.TrimPrefix(params[0], "m="), 10, 32)
	if err != nil {
		return a, fmt.Errorf("invalid memory parameter: %w", err)
	}
	t, err := strconv.ParseUint(strings.TrimPrefix(params[1], "t="), 10, 32)
	if err != nil {
		return a, fmt.Errorf("invalid iterations parameter: %w", err)
	}
	p, err := strconv.ParseUint(strings.TrimPrefix(params[2], "p="), 10, 8)
	if err != nil {
		return a, fmt.Errorf("invalid parallelism parameter: %w", err)
	}
	if a.salt, err = base64.RawStdEncoding.Strict().DecodeString(parts[4]); err != nil {
		return a, fmt.Errorf("decode salt: %w", err)
	}
	if a.key, err = base64.RawStdEncoding.Strict().DecodeString(parts[5]); err != nil {
		return a, fmt.Errorf("decode key: %w", err)
	}
	a.memory, a.time, a.threads = uint32(m), uint32(t), uint8(p)
	return a, nil
}

// encode writes the hash as caddyauth's Argon2idHash.Hash does.
func (a argon2idHash) encode() []byte {
	return fmt.Appendf(nil, "$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, a.memory, a.time, a.threads,
		base64.RawStdEncoding.EncodeToString(a.salt), base64.RawStdEncoding.EncodeToString(a.key))
}

// hashClass is what a comparison with hash costs: bcrypt's cost, or
// argon2id's parameters and key length. Hashes of one class take the same
// time to compare.
func hashClass(hash string) string {
	if strings.HasPrefix(hash, "$argon2id$") {
		parts := strings.Split(hash, "$")
		return "argon2id " + parts[3] + " " + strconv.Itoa(len(parts[4])) + " " + strconv.Itoa(len(parts[5]))
	}
	c, _ := bcrypt.Cost([]byte(hash))
	return "bcrypt " + strconv.Itoa(c)
}

// dummies holds, per hash class, a hash of a random password that no
// one knows: an unknown account name is compared against one, so that it
// costs what an account's wrong password costs. Shared by every
// Directory: a reload makes none again.
var dummies sync.Map // class -> []byte

// dummyFor is the dummy of hash's class (a hash CheckHash accepted).
func dummyFor(hash string) []byte {
	class := hashClass(hash)
	if v, ok := dummies.Load(class); ok {
		return v.([]byte)
	}
	var pw [16]byte
	_, _ = rand.Read(pw[:])
	var h []byte
	if a, err := decodeArgon2id(hash); err == nil {
		salt := make([]byte, len(a.salt))
		_, _ = rand.Read(salt)
		a.salt, a.key = salt, argon2.IDKey(pw[:], salt, a.time, a.memory, a.threads, uint32(len(a.key)))
		h = a.encode()
	} else {
		c, _ := bcrypt.Cost([]byte(hash))
		h, _ = bcrypt.GenerateFromPassword(pw[:], c)
	}
	v, _ := dummies.LoadOrStore(class, h)
	return v.([]byte)
}

// comparePassword reports whether password is the one hash was made of.
func comparePassword(hash []byte, password string) bool {
	if strings.HasPrefix(string(hash), "$argon2id$") {
		a, err := decodeArgon2id(string(hash))
		if err != nil {
			return false
		}
		key := argon2.IDKey([]byte(password), a.salt, a.time, a.memory, a.threads, uint32(len(a.key)))
		return subtle.ConstantTimeCompare(a.key, key) == 1
	}
	if len(password) > BcryptMaxPassword {
		// Compared all the same (its first 72 bytes), so that a refusal
		// takes as long as any other, and refused.
		_ = bcrypt.CompareHashAndPassword(hash, []byte(password[:BcryptMaxPassword]))
		return false
	}
	return bcrypt.CompareHashAndPassword(hash, []byte(password)) == nil
}
