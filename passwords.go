package sessionauth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp/caddyauth"
	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// Account passwords are bcrypt or argon2id hashes, as `caddy hash-password`
// prints them (--algorithm bcrypt, the default, or argon2id).

// bcryptMaxPassword is all bcrypt reads of a password: a longer one is
// refused at sign-in rather than cut, so that it never matches the
// account whose password is its first 72 bytes. `caddy hash-password`
// refuses to hash one, so no account can have one.
const bcryptMaxPassword = 72

// Bounds on argon2id's parameters: a hash is the operator's, but a typo
// in one must not make every sign-in allocate gigabytes.
const (
	argon2MaxMemory = 1 << 20 // KiB: 1 GiB
	argon2MaxTime   = 64
	argon2MinKey    = 16
	argon2MinSalt   = 8
)

// checkHash says, in words, why hash is not one `caddy hash-password`
// prints; nil when it is.
func checkHash(hash string) error {
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
		_, key, err := caddyauth.DecodeHash([]byte(hash))
		if err != nil {
			return fmt.Errorf("the password %s: this argon2id hash does not read (%v)", how, err)
		}
		m, t, threads, salt := argon2Params(hash)
		switch {
		case m == 0 || t == 0 || threads == 0:
			return fmt.Errorf("the password's argon2id hash needs m, t and p of at least 1")
		case m > argon2MaxMemory:
			return fmt.Errorf("the password's argon2id hash asks for %d KiB of memory per sign-in; at most %d are accepted", m, argon2MaxMemory)
		case t > argon2MaxTime:
			return fmt.Errorf("the password's argon2id hash asks for %d iterations; at most %d are accepted", t, argon2MaxTime)
		case len(key) < argon2MinKey || salt < argon2MinSalt:
			return fmt.Errorf("the password's argon2id hash has a key shorter than %d bytes or a salt shorter than %d", argon2MinKey, argon2MinSalt)
		}
		return nil
	}
	return fmt.Errorf("the password %s (it starts with $2a$, $2b$, $2y$ or $argon2id$)", how)
}

// argon2Params reads m, t, p and the salt's length of a hash checkHash's
// DecodeHash accepted.
func argon2Params(hash string) (m, t uint32, p uint8, saltLen int) {
	parts := strings.Split(hash, "$")
	for _, kv := range strings.Split(parts[3], ",") {
		k, v, _ := strings.Cut(kv, "=")
		n, _ := strconv.ParseUint(v, 10, 32)
		switch k {
		case "m":
			m = uint32(n)
		case "t":
			t = uint32(n)
		case "p":
			p = uint8(min(n, 255))
		}
	}
	return m, t, p, len(parts[4]) * 3 / 4
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
// costs what an account's wrong password costs.
var dummies sync.Map // class -> []byte

func dummyFor(hash string) []byte {
	class := hashClass(hash)
	if v, ok := dummies.Load(class); ok {
		return v.([]byte)
	}
	var pw [16]byte
	_, _ = rand.Read(pw[:])
	var h []byte
	if strings.HasPrefix(hash, "$argon2id$") {
		_, key, _ := caddyauth.DecodeHash([]byte(hash))
		m, t, threads, saltLen := argon2Params(hash)
		salt := make([]byte, saltLen)
		_, _ = rand.Read(salt)
		// The same text caddyauth's Hash writes, which its Compare reads.
		h = fmt.Appendf(nil, "$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, m, t, threads,
			base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(argon2.IDKey(pw[:], salt, t, m, threads, uint32(len(key)))))
	} else {
		c, _ := bcrypt.Cost([]byte(hash))
		h, _ = bcrypt.GenerateFromPassword(pw[:], c)
	}
	v, _ := dummies.LoadOrStore(class, h)
	return v.([]byte)
}

// provisionDummies gives each account, in the order of their names, the
// dummy of its class: an unknown name is compared with the dummy of the
// account its keyed hash picks (unknownHash), so that the costs of
// unknown names are spread as the accounts' are. The same name always
// costs the same (a repeated measurement tells nothing), and without
// the key nobody can say which cost an unknown name will have.
func (h *Handler) provisionDummies() {
	users := make([]string, 0, len(h.SignIn.accounts))
	for u := range h.SignIn.accounts {
		users = append(users, u)
	}
	slices.Sort(users)
	h.dummies = h.dummies[:0]
	for _, u := range users {
		h.dummies = append(h.dummies, dummyFor(h.SignIn.accounts[u].Hash))
	}
}

// unknownHash is the dummy an unknown name is compared with.
func (h *Handler) unknownHash(name string) []byte {
	if len(h.dummies) == 0 {
		return nil
	}
	mac := hmac.New(sha256.New, h.nameKey)
	mac.Write([]byte(name))
	return h.dummies[binary.BigEndian.Uint64(mac.Sum(nil))%uint64(len(h.dummies))]
}

// comparePassword reports whether password is the one hash was made of.
func comparePassword(hash []byte, password string) bool {
	if bytesHasPrefix(hash, "$argon2id$") {
		ok, err := caddyauth.Argon2idHash{}.Compare(hash, []byte(password))
		return err == nil && ok
	}
	if len(password) > bcryptMaxPassword {
		// Compared all the same (its first 72 bytes), so that a refusal
		// takes as long as any other, and refused.
		_ = bcrypt.CompareHashAndPassword(hash, []byte(password[:bcryptMaxPassword]))
		return false
	}
	return bcrypt.CompareHashAndPassword(hash, []byte(password)) == nil
}

func bytesHasPrefix(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && string(b[:len(prefix)]) == prefix
}
