package oidc

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"time"
)

// A sign-in under way is kept in the browser, not on the server: the
// pending record (nonce, PKCE verifier, next, the step-up) sealed with
// AES-GCM into the binding cookie, and the state a MAC of its own time,
// both under a key of the caller's ring (StateKey), newest first.

// Pending is what the binding cookie keeps, sealed, between the button
// and the callback: used once, for PendingTTL.
type Pending struct {
	Provider string `json:"p"`
	State    string `json:"st"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"` // PKCE
	Next     string `json:"x"`
	// A step-up: the session it confirms (the browser held it at the
	// start) and when it started, in Unix milliseconds.
	StepUp string `json:"s,omitempty"`
	Since  int64  `json:"t,omitempty"`
}

// StateKey is one key of the ring, and when it was made.
type StateKey struct {
	Made time.Time
	Key  []byte
}

// RandomString is 32 random bytes, base64url: a nonce.
func RandomString() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func subKey(key []byte, use string) []byte {
	out, _ := hkdf.Key(sha256.New, key, nil, "session_auth oidc "+use, 32)
	return out
}

// NewState is a state made now under key: 16 random bytes, the time in
// Unix milliseconds, and a MAC of both.
func NewState(key []byte, now time.Time) string {
	b := make([]byte, 24, 40)
	_, _ = rand.Read(b[:16])
	binary.BigEndian.PutUint64(b[16:], uint64(now.UnixMilli()))
	mac := hmac.New(sha256.New, subKey(key, "state"))
	mac.Write(b)
	return base64.RawURLEncoding.EncodeToString(mac.Sum(b)[:40])
}

// StateMadeAt checks a state against the keys: when it was made, or
// false for one no key made.
func StateMadeAt(keys []StateKey, state string) (time.Time, bool) {
	b, err := base64.RawURLEncoding.DecodeString(state)
	if err != nil || len(b) != 40 {
		return time.Time{}, false
	}
	for _, k := range keys {
		mac := hmac.New(sha256.New, subKey(k.Key, "state"))
		mac.Write(b[:24])
		if hmac.Equal(mac.Sum(nil)[:16], b[24:]) {
			return time.UnixMilli(int64(binary.BigEndian.Uint64(b[16:24]))), true
		}
	}
	return time.Time{}, false
}

// SealPending seals ps (with its state) under key for the binding cookie.
func SealPending(key []byte, ps Pending) (string, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // a next with < or & stays its length
	if err := enc.Encode(ps); err != nil {
		return "", err
	}
	block, err := aes.NewCipher(subKey(key, "pending"))
	if err != nil {
		return "", err
	}
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(aead.Seal(nil, nil, buf.Bytes(), []byte(ps.State))), nil
}

// OpenPending opens a binding cookie's value for state under any of the
// keys: the cookie of another sign-in (another state) does not open.
func OpenPending(keys []StateKey, value, state string) (Pending, error) {
	var ps Pending
	raw, err := base64.RawURLEncoding.DecodeString(value)
	if err != nil {
		return ps, err
	}
	for _, k := range keys {
		block, err := aes.NewCipher(subKey(k.Key, "pending"))
		if err != nil {
			return ps, err
		}
		aead, err := cipher.NewGCMWithRandomNonce(block)
		if err != nil {
			return ps, err
		}
		if plain, err := aead.Open(nil, nil, raw, []byte(state)); err == nil {
			if err := json.Unmarshal(plain, &ps); err != nil || ps.State != state {
				return Pending{}, errors.New("binding cookie unreadable")
			}
			return ps, nil
		}
	}
	return ps, errors.New("binding cookie is not this sign-in's")
}
