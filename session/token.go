package session

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
)

// A credential is what the session cookie carries: "<id>.<secret>".
//
// The id is public (lists, headers, admin API). Its first 12 hex digits
// are the user's tag: an HMAC-SHA256 of the user id under a secret of the
// store (UserTagFor), so that an id does not tell whose it is to anyone
// who can guess user ids and hash them. The tag is the Redis hash tag, so
// that a session and its user's indexes live in one cluster slot and
// every script touching them together is slot-safe. The secret is 256
// bits from crypto/rand; the store keeps only its SHA-256.
//
// Ids made before the tag was keyed carry LegacyUserTag, the unkeyed
// SHA-256 of the user id; every store still finds them by id.
const (
	userTagLen = 12                    // hex digits of the tag
	idLen      = userTagLen + 20       // plus 80 random bits
	secretLen  = 43                    // base64url, no padding, of 32 bytes
	CookieLen  = idLen + 1 + secretLen // "<id>.<secret>": the one length a cookie of ours has
)

// ErrMalformed is returned for a credential that cannot be one of ours.
var ErrMalformed = errors.New("malformed session credential")

// UserTagFor is the tag of userID's ids under a store's tag key.
func UserTagFor(key []byte, userID string) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(userID))
	return hex.EncodeToString(mac.Sum(nil))[:userTagLen]
}

// LegacyUserTag is the tag of ids made before tags were keyed.
func LegacyUserTag(userID string) string {
	sum := sha256.Sum256([]byte(userID))
	return hex.EncodeToString(sum[:])[:userTagLen]
}

// newTagKey makes a store's tag key.
func newTagKey() ([]byte, error) {
	key := make([]byte, 32)
	_, err := rand.Read(key)
	return key, err
}

// NewCredentialTagged mints a fresh session id with the user tag tag, and
// its secret. It returns the session id, the cookie value and the
// secret's hash. Stores give the tag: see Sessions.NewCredential.
func NewCredentialTagged(tag string) (id, cookie string, hash [32]byte, err error) {
	var buf [10 + 32]byte
	if _, err = rand.Read(buf[:]); err != nil {
		return "", "", hash, err
	}
	id = tag + hex.EncodeToString(buf[:10])
	secret := base64.RawURLEncoding.EncodeToString(buf[10:])
	return id, id + "." + secret, sha256.Sum256([]byte(secret)), nil
}

// LegacyCredential mints a credential as before tags were keyed: for
// tests of the ids that stores still hold.
func LegacyCredential(userID string) (id, cookie string, hash [32]byte, err error) {
	return NewCredentialTagged(LegacyUserTag(userID))
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
