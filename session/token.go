package session

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
)

// A credential is what the session cookie carries: "<id>.<secret>".
//
// The id is public (lists, headers, admin API). Its first 12 hex digits are
// derived from the user id: they form the Redis hash tag, so that a session
// and its user's indexes live in one cluster slot and every script touching
// them together is slot-safe. The secret is 256 bits from crypto/rand; the
// store keeps only its SHA-256.
const (
	userTagLen = 12                    // hex digits of SHA-256(user id)
	idLen      = userTagLen + 20       // plus 80 random bits
	secretLen  = 43                    // base64url, no padding, of 32 bytes
	CookieLen  = idLen + 1 + secretLen // "<id>.<secret>": the one length a cookie of ours has
)

// ErrMalformed is returned for a credential that cannot be one of ours.
var ErrMalformed = errors.New("malformed session credential")

// UserTag is the hash tag that groups a user's keys in one cluster slot.
func UserTag(userID string) string {
	sum := sha256.Sum256([]byte(userID))
	return hex.EncodeToString(sum[:])[:userTagLen]
}

// NewCredential mints a fresh session id and secret for userID.
// It returns the session id, the cookie value and the secret's hash.
func NewCredential(userID string) (id, cookie string, hash [32]byte, err error) {
	var buf [10 + 32]byte
	if _, err = rand.Read(buf[:]); err != nil {
		return "", "", hash, err
	}
	id = UserTag(userID) + hex.EncodeToString(buf[:10])
	secret := base64.RawURLEncoding.EncodeToString(buf[10:])
	return id, id + "." + secret, sha256.Sum256([]byte(secret)), nil
}

// ParseCredential splits a cookie value into session id and the hash of
// its secret. Anything that is not exactly our format is ErrMalformed.
func ParseCredential(v string) (id string, hash [32]byte, err error) {
	if len(v) != CookieLen || v[idLen] != '.' {
		return "", hash, ErrMalformed
	}
	id, secret := v[:idLen], v[idLen+1:]
	if !ValidID(id) {
		return "", hash, ErrMalformed
	}
	for i := 0; i < len(secret); i++ {
		if !isBase64URL(secret[i]) {
			return "", hash, ErrMalformed
		}
	}
	// The last character of 32 bytes in base64 carries 2 padding bits that
	// must be zero; reject non-canonical encodings so one secret has one form.
	if strings.IndexByte(base64URLAlphabet, secret[len(secret)-1])&3 != 0 {
		return "", hash, ErrMalformed
	}
	var buf [secretLen]byte // hashed from the stack: no allocation per request
	copy(buf[:], secret)
	return id, sha256.Sum256(buf[:]), nil
}

// ValidID reports whether s has the shape of a session id.
func ValidID(s string) bool {
	if len(s) != idLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// TagOfID returns the user hash tag embedded in a valid session id.
func TagOfID(id string) string { return id[:userTagLen] }

const base64URLAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

func isBase64URL(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}
