// Package webauthntest is a software WebAuthn authenticator for tests:
// it builds what a browser and a platform authenticator send (attestation
// "none", ES256 assertions) so that the ceremonies of accounts/ and of
// the gateway's endpoints run without a browser. It is a test fixture,
// not product crypto.
package webauthntest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"testing"

	"github.com/fxamacker/cbor/v2"
)

// B64 is WebAuthn's base64url without padding, as the JSON carries it.
var B64 = base64.RawURLEncoding

// SoftKey is an authenticator holding one passkey. Tests change its
// fields to play other authenticators: a copy with an older Count (a
// clone), UV false (a security key touched without a PIN), another
// Origin (a phishing page), another Handle (someone else's account).
type SoftKey struct {
	t      testing.TB
	key    *ecdsa.PrivateKey
	RPID   string
	Origin string // where the browser says the page was
	ID     []byte // the credential id
	Handle []byte // the user handle stored with the passkey, set by Create
	Count  uint32
	UV     bool // the authenticator verifies the person
	Synced bool // backup eligible and backed up (a synced passkey)
}

// New is a fresh authenticator for rpID, used from a page at origin,
// that verifies the person.
func New(t testing.TB, rpID, origin string) *SoftKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	return &SoftKey{t: t, RPID: rpID, Origin: origin, key: k, ID: id, UV: true}
}

// Options is what the tests read of a ceremony's options.
type Options struct {
	PublicKey struct {
		Challenge string `json:"challenge"`
		RP        struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"rp"`
		RPID string `json:"rpId"`
		User struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"user"`
		AuthenticatorSelection struct {
			ResidentKey      string `json:"residentKey"`
			UserVerification string `json:"userVerification"`
		} `json:"authenticatorSelection"`
		UserVerification   string `json:"userVerification"`
		ExcludeCredentials []struct {
			ID string `json:"id"`
		} `json:"excludeCredentials"`
		AllowCredentials []struct {
			ID string `json:"id"`
		} `json:"allowCredentials"`
	} `json:"publicKey"`
}

// ReadOptions decodes options, failing the test when they are not JSON.
func ReadOptions(t testing.TB, options []byte) Options {
	t.Helper()
	var o Options
	if err := json.Unmarshal(options, &o); err != nil {
		t.Fatalf("options %s: %v", options, err)
	}
	return o
}

func (k *SoftKey) clientData(typ, challenge string) []byte {
	cd, _ := json.Marshal(map[string]any{"type": typ, "challenge": challenge, "origin": k.Origin, "crossOrigin": false})
	return cd
}

func (k *SoftKey) authData(attested []byte) []byte {
	rp := sha256.Sum256([]byte(k.RPID))
	flags := byte(0x01) // UP
	if k.UV {
		flags |= 0x04
	}
	if k.Synced {
		flags |= 0x08 | 0x10
	}
	if attested != nil {
		flags |= 0x40
	}
	ad := append(rp[:], flags)
	ad = binary.BigEndian.AppendUint32(ad, k.Count)
	return append(ad, attested...)
}

// Create answers registration options as navigator.credentials.create
// would: the JSON of the PublicKeyCredential. It keeps the user handle
// the options give.
func (k *SoftKey) Create(options []byte) []byte {
	k.t.Helper()
	o := ReadOptions(k.t, options)
	var err error
	if k.Handle, err = B64.DecodeString(o.PublicKey.User.ID); err != nil {
		k.t.Fatal(err)
	}
	cose, err := cbor.Marshal(map[int]any{
		1: 2, 3: -7, -1: 1, // EC2, ES256, P-256
		-2: k.key.X.FillBytes(make([]byte, 32)), -3: k.key.Y.FillBytes(make([]byte, 32)),
	})
	if err != nil {
		k.t.Fatal(err)
	}
	attested := make([]byte, 16) // AAGUID: none given
	attested = binary.BigEndian.AppendUint16(attested, uint16(len(k.ID)))
	attested = append(append(attested, k.ID...), cose...)
	att, err := cbor.Marshal(map[string]any{"fmt": "none", "attStmt": map[string]any{}, "authData": k.authData(attested)})
	if err != nil {
		k.t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]any{
		"id": B64.EncodeToString(k.ID), "rawId": B64.EncodeToString(k.ID), "type": "public-key",
		"authenticatorAttachment": "platform",
		"clientExtensionResults":  map[string]any{},
		"response": map[string]any{
			"clientDataJSON":    B64.EncodeToString(k.clientData("webauthn.create", o.PublicKey.Challenge)),
			"attestationObject": B64.EncodeToString(att),
			"transports":        []string{"internal", "hybrid"},
		},
	})
	return body
}

// Get answers sign-in options as navigator.credentials.get would, the
// counter advanced first.
func (k *SoftKey) Get(options []byte) []byte {
	k.t.Helper()
	return k.GetWith(ReadOptions(k.t, options).PublicKey.Challenge)
}

// GetWith is Get signing over challenge (base64url), whatever the
// options said: an answer to another ceremony.
func (k *SoftKey) GetWith(challenge string) []byte {
	k.t.Helper()
	k.Count++
	ad := k.authData(nil)
	cd := k.clientData("webauthn.get", challenge)
	h := sha256.Sum256(cd)
	digest := sha256.Sum256(append(append([]byte{}, ad...), h[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, k.key, digest[:])
	if err != nil {
		k.t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]any{
		"id": B64.EncodeToString(k.ID), "rawId": B64.EncodeToString(k.ID), "type": "public-key",
		"authenticatorAttachment": "platform",
		"clientExtensionResults":  map[string]any{},
		"response": map[string]any{
			"clientDataJSON":    B64.EncodeToString(cd),
			"authenticatorData": B64.EncodeToString(ad),
			"signature":         B64.EncodeToString(sig),
			"userHandle":        B64.EncodeToString(k.Handle),
		},
	})
	return body
}
