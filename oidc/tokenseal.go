package oidc

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"time"
)

// Tokens are what an OIDC session keeps of the provider's answer.
type Tokens struct {
	Refresh string    `json:"r,omitempty"`
	Access  string    `json:"a,omitempty"`
	ID      string    `json:"i,omitempty"` // the ID token: logout_at_provider's id_token_hint
	Expiry  time.Time `json:"e"`
	// An API token made by a provider's session (SPEC 11 Recheck): the
	// session that made it and that session's token key, so that the
	// token's recheck spends the one refresh token chain while the
	// session lives (a provider that rotates refresh tokens has one
	// chain per sign-in), and takes over its newest link once the session
	// is gone. Synced is the session's CheckedAt when the copy above was
	// taken from it.
	Parent    string    `json:"p,omitempty"`
	ParentKey []byte    `json:"k,omitempty"`
	Synced    time.Time `json:"s,omitzero"`
}

// TokenKey derives the key that seals a session's provider tokens from
// the session cookie's secret, which the store holds only as a SHA-256:
// a copy of the store cannot derive it, a request with the cookie can.
func TokenKey(secret, sessionID string) ([]byte, error) {
	if secret == "" {
		return nil, errors.New("no cookie secret to derive the token key from")
	}
	return hkdf.Key(sha256.New, []byte(secret), nil, "session_auth provider tokens "+sessionID, 32)
}

// SealTokens encrypts t with AES-256-GCM under the session's token key,
// the session id as associated data.
func SealTokens(secret, sessionID string, t Tokens) (string, error) {
	key, err := TokenKey(secret, sessionID)
	if err != nil {
		return "", err
	}
	return SealTokensWith(key, sessionID, t)
}

// SealTokensWith is SealTokens with the session's token key itself.
func SealTokensWith(key []byte, sessionID string, t Tokens) (string, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return "", err
	}
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return "", err
	}
	plain, err := json.Marshal(t)
	if err != nil {
		return "", err
	}
	return base64.RawStdEncoding.EncodeToString(aead.Seal(nil, nil, plain, []byte(sessionID))), nil
}

// OpenTokens reverses SealTokens; it fails without the right cookie.
func OpenTokens(secret, sessionID, sealed string) (Tokens, error) {
	key, err := TokenKey(secret, sessionID)
	if err != nil {
		return Tokens{}, err
	}
	return OpenTokensWith(key, sessionID, sealed)
}

// OpenTokensWith is OpenTokens with the session's token key itself.
func OpenTokensWith(key []byte, sessionID, sealed string) (Tokens, error) {
	var t Tokens
	raw, err := base64.RawStdEncoding.DecodeString(sealed)
	if err != nil {
		return t, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return t, err
	}
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return t, err
	}
	plain, err := aead.Open(nil, nil, raw, []byte(sessionID))
	if err != nil {
		return t, err
	}
	return t, json.Unmarshal(plain, &t)
}
