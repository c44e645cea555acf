package accounts

import (
	"crypto/rand"
	"crypto/subtle"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Recovery codes (SPEC 15) stand in for a second factor: ten single-use
// codes of two groups of 5 lowercase letters and digits (k3x9q-7mw2p),
// shown once and stored hashed.

// RecoveryCodeCount is how many codes a set holds.
const RecoveryCodeCount = 10

const (
	recoveryAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	recoveryLen      = 10 // characters, without the dash
)

// The codes' hash. A code is 10 characters of 36, about 51.7 bits:
// far more than a password, far less than a key, so a plain SHA-256 of
// a leaked store could be searched on GPUs in days. A salted, memory-hard
// argon2id makes each guess cost 16 MiB and ~25 ms of a core, which puts
// the search out of reach, while a check at sign-in stays one hash.
//
// One salt for the whole set, not one per code: a typed code is hashed
// once and compared with all ten, so a wrong code costs one hash, not ten
// (and the time of a check says nothing of which code matched). It gives
// a cracker of the set the same factor of ten (3.3 bits: ~48 are left);
// a fresh salt per set still stops any table shared across accounts.
var recoveryParams = argon2idHash{memory: 16 * 1024, time: 1, threads: 1}

const (
	recoverySaltLen = 16
	recoveryKeyLen  = 32
)

// MakeRecoveryCodes makes a new set of codes: the codes, to show once,
// and their hashes in the same order, to store (MatchRecoveryCode reads
// them).
func MakeRecoveryCodes() (codes, hashes []string, err error) {
	salt := make([]byte, recoverySaltLen)
	if _, err := rand.Read(salt); err != nil {
		return nil, nil, err
	}
	codes = make([]string, RecoveryCodeCount)
	hashes = make([]string, RecoveryCodeCount)
	for i := range codes {
		c, err := randomRecoveryCode()
		if err != nil {
			return nil, nil, err
		}
		codes[i] = c[:5] + "-" + c[5:]
		h := recoveryParams
		h.salt, h.key = salt, argon2.IDKey([]byte(c), salt, h.time, h.memory, h.threads, recoveryKeyLen)
		hashes[i] = string(h.encode())
	}
	return codes, hashes, nil
}

// randomRecoveryCode is 10 characters of recoveryAlphabet from
// crypto/rand, without the dash.
func randomRecoveryCode() (string, error) {
	// 252 is the largest multiple of 36 below 256: bytes at or above it
	// are drawn again, so every character is equally likely.
	const limit = 256 - 256%len(recoveryAlphabet)
	var b strings.Builder
	buf := make([]byte, 2*recoveryLen)
	for b.Len() < recoveryLen {
		if _, err := rand.Read(buf); err != nil {
			return "", err
		}
		for _, x := range buf {
			if int(x) < limit && b.Len() < recoveryLen {
				b.WriteByte(recoveryAlphabet[int(x)%len(recoveryAlphabet)])
			}
		}
	}
	return b.String(), nil
}

// normalRecoveryCode is typed as MakeRecoveryCodes wrote it, without the
// dash: case, spaces and dashes as a person types them do not count. ok
// is false when it cannot be a code at all.
func normalRecoveryCode(typed string) (string, bool) {
	var b strings.Builder
	for _, r := range strings.ToLower(typed) {
		switch {
		case r == '-' || r == ' ' || r == '\t' || r == '\u2010' || r == '\u2013':
		case strings.ContainsRune(recoveryAlphabet, r):
			b.WriteRune(r)
		default:
			return "", false
		}
	}
	return b.String(), b.Len() == recoveryLen
}

// MatchRecoveryCode says which of hashes (as MakeRecoveryCodes made them;
// empty ones, used codes, are skipped) is typed's: the caller removes
// that one, so that the code works once. Each distinct salt costs one
// hash (a set made by MakeRecoveryCodes has one), and every hash is
// compared in constant time, whichever matches.
func MatchRecoveryCode(typed string, hashes []string) (index int, ok bool) {
	code, valid := normalRecoveryCode(typed)
	if !valid {
		return -1, false
	}
	keys := map[string][]byte{} // the hash's params and salt -> typed's key with them
	index = -1
	for i, h := range hashes {
		a, err := decodeArgon2id(h)
		if err != nil || !recoveryHashSane(a) {
			continue
		}
		class := h[:strings.LastIndexByte(h, '$')]
		key, seen := keys[class]
		if !seen {
			key = argon2.IDKey([]byte(code), a.salt, a.time, a.memory, a.threads, uint32(len(a.key)))
			keys[class] = key
		}
		if subtle.ConstantTimeCompare(key, a.key) == 1 && index < 0 {
			index = i
		}
	}
	return index, index >= 0
}

// recoveryHashSane: a stored hash is the gateway's own, but a damaged one
// must not make a check allocate gigabytes.
func recoveryHashSane(a argon2idHash) bool {
	return a.memory > 0 && a.memory <= argon2MaxMemory && a.time > 0 && a.time <= argon2MaxTime && a.threads > 0 &&
		len(a.key) >= argon2MinKey && len(a.salt) >= argon2MinSalt
}
