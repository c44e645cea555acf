package accounts

import (
	"context"
	"crypto/subtle"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// TOTP codes are RFC 6238's as authenticator apps show them: 6 digits,
// SHA-1, a new one every 30 s.
var totpOpts = totp.ValidateOpts{Period: 30, Skew: 1, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// CodeStep is how long a code is shown.
const CodeStep = 30 * time.Second

// Why CheckTOTP refuses a code.
var (
	ErrWrongCode = errors.New("wrong code")
	// ErrCodeUsed: the code was right but was used already (or the
	// ledger could not say it was not: refused all the same).
	ErrCodeUsed = errors.New("code used already")
)

// TOTPSecret is secret (base32, spaces and case as typed) as Account.TOTP
// holds it, or an error in words when it is not a base32 secret.
func TOTPSecret(secret string) (string, error) {
	s := strings.ToUpper(strings.ReplaceAll(secret, " ", ""))
	if _, err := TOTPCode(s, time.Unix(0, 0)); err != nil {
		return "", errors.New("must be a base32 secret")
	}
	return s, nil
}

// TOTPCode is the code an authenticator app with secret shows at t.
func TOTPCode(secret string, t time.Time) (string, error) {
	return totp.GenerateCodeCustom(secret, t, totpOpts)
}

// CheckTOTP checks code, as authenticator apps show it ("123 456" or
// "123-456"), for acct at now: this 30 s step or a neighbour (clock
// drift). Each step is used once: the ledger remembers it while a code
// of it could still be valid, and a second use is ErrCodeUsed, on this
// gateway or another sharing the ledger.
func (d *Directory) CheckTOTP(ctx context.Context, acct Account, code string, now time.Time) error {
	code = strings.NewReplacer(" ", "", "-", "", "\t", "").Replace(code)
	if len(code) != 6 || acct.TOTP == "" {
		return ErrWrongCode
	}
	for _, off := range []int{0, -1, 1} {
		at := now.Add(time.Duration(off) * CodeStep)
		want, err := TOTPCode(acct.TOTP, at)
		if err != nil || subtle.ConstantTimeCompare([]byte(want), []byte(code)) != 1 {
			continue
		}
		step := at.Unix() / 30
		n, _, err := d.replays.Hit(ctx, "totp:"+acct.User+":"+strconv.FormatInt(step, 10), 3*CodeStep, now)
		if err != nil || n > 1 {
			return ErrCodeUsed
		}
		return nil
	}
	return ErrWrongCode
}
