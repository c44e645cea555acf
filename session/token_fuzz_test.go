package session

import (
	"strings"
	"testing"
)

func FuzzParseCredential(f *testing.F) {
	_, good, _, _ := NewCredential("alice")
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
		if len(v) != cookieLen || !ValidID(id) || v[:idLen] != id {
			t.Fatalf("accepted %q as id %q", v, id)
		}
		for i := 0; i < len(v); i++ {
			if v[i] < '-' || v[i] > 'z' {
				t.Fatalf("accepted a byte %q in %q", v[i], v)
			}
		}
	})
}
