package oidc

import (
	"crypto/sha256"
	"encoding/hex"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sessionauth/caddy-sessionauth/session"
)

// The provider's tokens are sealed under the cookie's secret: the cookie
// opens them, what the store keeps (the secret's SHA-256, the sealed
// text, the session id) does not.
func TestSealedTokensNeedTheCookie(t *testing.T) {
	id, cookie, hash, err := session.LegacyCredential("alice")
	if err != nil {
		t.Fatal(err)
	}
	secret := cookie[strings.IndexByte(cookie, '.')+1:]
	in := Tokens{Refresh: "refresh-7f3a", Access: "access-91c2", Expiry: time.Unix(1_800_000_000, 0).UTC()}
	sealed, err := SealTokens(secret, id, in)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(sealed, "refresh-7f3a") || strings.Contains(sealed, "access-91c2") {
		t.Fatal("sealed text shows the tokens")
	}
	out, err := OpenTokens(secret, id, sealed)
	if err != nil || !reflect.DeepEqual(out, in) {
		t.Fatalf("open with the cookie: %+v %v", out, err)
	}
	sum := sha256.Sum256([]byte(secret))
	if sum != hash {
		t.Fatal("the store's hash is not the secret's SHA-256")
	}
	for _, wrong := range []string{string(hash[:]), hex.EncodeToString(hash[:]), "", secret[1:]} {
		if _, err := OpenTokens(wrong, id, sealed); err == nil {
			t.Fatalf("opened with %q", wrong)
		}
	}
	other, _, _, _ := session.LegacyCredential("alice")
	if _, err := OpenTokens(secret, other, sealed); err == nil {
		t.Fatal("opened for another session id")
	}
}
