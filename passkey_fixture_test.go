package sessionauth

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

// The software authenticator of accounts/passkeys_test.go, copied: the
// root package's ceremony tests drive the endpoints with it.

// softKey is a software authenticator holding one passkey: a test
// fixture that builds what a browser and a platform authenticator send
// (attestation "none", ES256 assertions), not product crypto.
type softKey struct {
	t      *testing.T
	rpID   string
	origin string // where the browser says the page was
	key    *ecdsa.PrivateKey
	id     []byte
	handle []byte // the user handle stored with the passkey
	count  uint32
	uv     bool // the authenticator verifies the person
	synced bool // backup eligible and backed up (a synced passkey)
}

func newSoftKey(t *testing.T, rpID, origin string) *softKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	return &softKey{t: t, rpID: rpID, origin: origin, key: k, id: id, uv: true}
}

var pkB64 = base64.RawURLEncoding

// ceremonyOptions is what the tests read of the options.
type ceremonyOptions struct {
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

func readOptions(t *testing.T, options []byte) ceremonyOptions {
	t.Helper()
	var o ceremonyOptions
	if err := json.Unmarshal(options, &o); err != nil {
		t.Fatalf("options %s: %v", options, err)
	}
	return o
}

func (k *softKey) clientData(typ, challenge string) []byte {
	cd, _ := json.Marshal(map[string]any{"type": typ, "challenge": challenge, "origin": k.origin, "crossOrigin": false})
	return cd
}

func (k *softKey) authData(attested []byte) []byte {
	rp := sha256.Sum256([]byte(k.rpID))
	flags := byte(0x01) // UP
	if k.uv {
		flags |= 0x04
	}
	if k.synced {
		flags |= 0x08 | 0x10
	}
	if attested != nil {
		flags |= 0x40
	}
	ad := append(rp[:], flags)
	ad = binary.BigEndian.AppendUint32(ad, k.count)
	return append(ad, attested...)
}

// create answers registration options as navigator.credentials.create
// would: the JSON of the PublicKeyCredential.
func (k *softKey) create(options []byte) []byte {
	o := readOptions(k.t, options)
	var err error
	if k.handle, err = pkB64.DecodeString(o.PublicKey.User.ID); err != nil {
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
	attested = binary.BigEndian.AppendUint16(attested, uint16(len(k.id)))
	attested = append(append(attested, k.id...), cose...)
	att, err := cbor.Marshal(map[string]any{"fmt": "none", "attStmt": map[string]any{}, "authData": k.authData(attested)})
	if err != nil {
		k.t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]any{
		"id": pkB64.EncodeToString(k.id), "rawId": pkB64.EncodeToString(k.id), "type": "public-key",
		"authenticatorAttachment": "platform",
		"clientExtensionResults":  map[string]any{},
		"response": map[string]any{
			"clientDataJSON":    pkB64.EncodeToString(k.clientData("webauthn.create", o.PublicKey.Challenge)),
			"attestationObject": pkB64.EncodeToString(att),
			"transports":        []string{"internal", "hybrid"},
		},
	})
	return body
}

// get answers sign-in options as navigator.credentials.get would, the
// counter advanced first.
func (k *softKey) get(options []byte) []byte {
	return k.getWith(readOptions(k.t, options).PublicKey.Challenge)
}

func (k *softKey) getWith(challenge string) []byte {
	k.count++
	ad := k.authData(nil)
	cd := k.clientData("webauthn.get", challenge)
	h := sha256.Sum256(cd)
	digest := sha256.Sum256(append(append([]byte{}, ad...), h[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, k.key, digest[:])
	if err != nil {
		k.t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]any{
		"id": pkB64.EncodeToString(k.id), "rawId": pkB64.EncodeToString(k.id), "type": "public-key",
		"authenticatorAttachment": "platform",
		"clientExtensionResults":  map[string]any{},
		"response": map[string]any{
			"clientDataJSON":    pkB64.EncodeToString(cd),
			"authenticatorData": pkB64.EncodeToString(ad),
			"signature":         pkB64.EncodeToString(sig),
			"userHandle":        pkB64.EncodeToString(k.handle),
		},
	})
	return body
}
