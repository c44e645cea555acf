package accounts

import (
	"crypto/rand"
	"errors"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// What the account page (SPEC 15) needs of this package besides the
// directory: a stored account's password set and checked, a recovery
// code told from a TOTP code, an enrolment's page drawn again.

// Password lengths a person may choose (SPEC 15): no other rules.
const (
	MinPassword = 8
	MaxPassword = 256
)

// ErrPasswordLength: a new password shorter or longer than allowed.
var ErrPasswordLength = errors.New("a password has 8 to 256 characters")

// passwordParams are Caddy's argon2id defaults (`caddy hash-password
// --algorithm argon2id`): argon2id, not bcrypt, because a password may
// be longer than bcrypt's 72 bytes.
var passwordParams = argon2idHash{memory: 46 * 1024, time: 1, threads: 1}

const (
	passwordSaltLen = 16
	passwordKeyLen  = 32
)

// HashPassword hashes a new password for a stored account, as `caddy
// hash-password --algorithm argon2id` would; CheckPassword and the
// directory read it. ErrPasswordLength when it is not 8..256 characters.
func HashPassword(password string) (string, error) {
	if !PasswordLengthOK(password) {
		return "", ErrPasswordLength
	}
	salt := make([]byte, passwordSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	h := passwordParams
	h.salt, h.key = salt, argon2.IDKey([]byte(password), salt, h.time, h.memory, h.threads, passwordKeyLen)
	return string(h.encode()), nil
}

// PasswordLengthOK: password has 8 to 256 characters of UTF-8.
func PasswordLengthOK(password string) bool {
	n := utf8.RuneCountInString(password)
	return n >= MinPassword && n <= MaxPassword && utf8.ValidString(password)
}

// CheckPassword reports whether password is the one hash (bcrypt or
// argon2id, CheckHash's) was made of; false for a hash CheckHash refuses.
func CheckPassword(hash, password string) bool {
	if CheckHash(hash) != nil {
		return false
	}
	return comparePassword([]byte(hash), password)
}

// LooksLikeRecoveryCode: typed has a recovery code's shape (ten letters
// and digits, dashes and spaces aside), which no TOTP code has.
func LooksLikeRecoveryCode(typed string) bool {
	_, ok := normalRecoveryCode(typed)
	return ok
}

// RedrawTOTPEnrolment is the enrolment of secret and its otpauth URI
// (as NewTOTPEnrolment made them) again, its QR code drawn anew: the
// page shown again after a wrong first code.
func RedrawTOTPEnrolment(secret, uri string) (TOTPEnrolment, error) {
	svg, err := qrSVG(uri)
	if err != nil {
		return TOTPEnrolment{}, err
	}
	return TOTPEnrolment{Secret: secret, URI: uri, QR: svg}, nil
}
