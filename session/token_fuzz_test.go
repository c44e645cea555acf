package session

import (
	"strings"
	"testing"
)

func FuzzParseCredential(f *testing.F) {
	_, good, _, _ := LegacyCredential("alice")
	for _, seed := range []string{
		good, "", ".", "garbage", good + "x", good[:len(good)-1], strings.ToUpper(good),
		good[:32] + "." + strings.Repeat("=", 43), good[:32] + "/" + good[33:], "%2e%2e",
		strings.Repeat("a", 4096), good[:32] + ".\x00" + good[35:], good[:32] + ".é" + good[35:],
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, v string) {
		id, hash, err := ParseCredential(v)
		if err != nil {
			if id != "" || hash != [32]byte{} {
				t.Fatalf("error with a result: %q", v)
			}
			return
		}
		// Accepted: exactly our shape, and one canonical encoding.
		if len(v) != CookieLen || !ValidID(id) || v[:idLen] != id {
			t.Fatalf("accepted %q as id %q", v, id)
		}
		for i := 0; i < len(v); i++ {
			if v[i] < '-' || v[i] > 'z' {
				t.Fatalf("accepted a byte %q in %q", v[i], v)
			}
		}
	})
}

// Tokens come from crypto/rand with 256 bits: no repeats in many draws,
// and the store keeps only a hash (ASVS 7.2.3).
func TestCredentialsAreUniqueAndOpaque(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 20000; i++ {
		id, cookie, hash, err := LegacyCredential("u")
		if err != nil {
			t.Fatal(err)
		}
		secret := cookie[idLen+1:]
		if seen[secret] || seen[id] || len(secret) != 43 {
			t.Fatalf("repeat or short credential at draw %d", i)
		}
		seen[secret], seen[id] = true, true
		if strings.Contains(string(hash[:]), secret) {
			t.Fatal("the hash holds the secret")
		}
	}
}
