package accounts

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/hex"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"golang.org/x/crypto/argon2"
)

// Stored accounts (SPEC 15): the person chooses the password, and the
// gateway hashes it with argon2id at the parameters `caddy
// hash-password --algorithm argon2id` uses (46 MiB, one pass, one
// thread, a 32-byte key and a 16-byte salt). argon2id reads the whole
// password, which bcrypt (72 bytes) would not.
const (
	storedMemory  = 46 * 1024
	storedTime    = 1
	storedThreads = 1
	storedKeyLen  = 32
	storedSaltLen = 16
)

// The length of a password a person chooses, in characters.
const (
	MinPassword = 8
	MaxPassword = 256
)

// PasswordProblem says, in words, why a chosen password is refused; ""
// when it is fine. Its length is the only rule.
func PasswordProblem(password string) string {
	switch n := utf8.RuneCountInString(password); {
	case !utf8.ValidString(password):
		return "The password holds characters that are not text."
	case n < MinPassword:
		return "The password needs at least 8 characters."
	case n > MaxPassword:
		return "The password may have at most 256 characters."
	}
	return ""
}

// HashPassword hashes a stored account's password.
func HashPassword(password string) (string, error) {
	salt := make([]byte, storedSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	a := argon2idHash{memory: storedMemory, time: storedTime, threads: storedThreads, salt: salt}
	a.key = argon2.IDKey([]byte(password), salt, a.time, a.memory, a.threads, storedKeyLen)
	return string(a.encode()), nil
}

// storedDummy is a stored account's hash of a password no one knows.
var storedDummy = sync.OnceValue(func() []byte {
	var pw [16]byte
	_, _ = rand.Read(pw[:])
	h, _ := HashPassword(hex.EncodeToString(pw[:]))
	return []byte(h)
})

// CheckStored reports whether password is the one hash was made of.
// When the account cannot sign in with a password (usable false: no
// such account, disabled, no password yet) the password is compared
// with a dummy of the stored accounts' cost all the same, so that the
// refusal takes as long as a wrong password, and refused.
func CheckStored(hash string, usable bool, password string) bool {
	if !usable || hash == "" {
		_ = comparePassword(storedDummy(), password)
		return false
	}
	return comparePassword([]byte(hash), password)
}

// TOTPEnrolmentOf is the enrolment of an existing secret (base32 as
// NewTOTPEnrolment made it): its page again after a wrong first code.
func TOTPEnrolmentOf(issuer, account, secret string) (TOTPEnrolment, error) {
	raw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.TrimRight(secret, "="))
	if err != nil {
		return TOTPEnrolment{}, err
	}
	key, err := totp.Generate(totp.GenerateOpts{
		Issuer:      issuer,
		AccountName: account,
		Period:      uint(CodeStep / time.Second),
		Secret:      raw,
		Digits:      otp.DigitsSix,
		Algorithm:   otp.AlgorithmSHA1,
	})
	if err != nil {
		return TOTPEnrolment{}, err
	}
	svg, err := qrSVG(key.URL())
	if err != nil {
		return TOTPEnrolment{}, err
	}
	return TOTPEnrolment{Secret: key.Secret(), URI: key.URL(), QR: svg}, nil
}
