package accounts

import (
	"crypto/rand"
	"encoding/hex"
	"sync"
	"unicode/utf8"
)

// Stored accounts (SPEC 15) beside the account page's (selfservice.go):
// the words for a refused password, and the dummy a refused sign-in is
// compared with.

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
