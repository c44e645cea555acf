package sessionauth

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// An unknown user's password is compared against a hash of the accounts'
// own cost, so the answer takes as long as a known user's wrong password;
// and accounts_file adds its blocks to the config's.
func TestUnknownUserComparedAtTheAccountsCost(t *testing.T) {
	hash, _ := bcrypt.GenerateFromPassword([]byte("demo"), 6)
	file := filepath.Join(t.TempDir(), "accounts")
	if err := os.WriteFile(file, []byte("carol "+string(hash)+" {\n\temail carol@example.com\n\ttotp {env.CAROL_TOTP}\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CAROL_TOTP", "jbsw y3dp ehpk 3pxp")
	h := &Handler{SignIn: &SignIn{Accounts: []*Account{{User: "alice", Hash: string(hash)}}, AccountsFile: file}}
	if err := h.provisionSignIn(); err != nil {
		t.Fatal(err)
	}
	if cost, err := bcrypt.Cost(h.dummyHash); err != nil || cost != 6 {
		t.Fatalf("dummy hash cost %d %v, want 6", cost, err)
	}
	carol := h.SignIn.accounts["carol"]
	if carol == nil || carol.Email != "carol@example.com" || carol.TOTP != "JBSWY3DPEHPK3PXP" {
		t.Fatalf("accounts_file: %+v", carol)
	}
	if h.passwordMatches(nil, "demo") || !h.passwordMatches(h.SignIn.accounts["alice"], "demo") || h.passwordMatches(carol, "other") {
		t.Fatal("passwordMatches")
	}

	dup := &Handler{SignIn: &SignIn{Accounts: []*Account{{User: "carol", Hash: string(hash)}}, AccountsFile: file}}
	if err := dup.provisionSignIn(); err == nil {
		t.Fatal("an account in both the config and the file was accepted")
	}
}

// Email user ids are one person in any case (SPEC 11 "One user id, one
// person"): the hand-off's Bob@Example.COM is stored, listed and
// forwarded as bob@example.com; another id keeps its case.
func TestEmailUserIDsAreLowerCase(t *testing.T) {
	h, _ := testHandler(t, nil)
	for given, want := range map[string]string{"Bob@Example.COM": "bob@example.com", "Carol": "Carol"} {
		c := signIn(t, h, given)
		up := &upstream{}
		if w := serve(t, h, get("/", c), up); w.Code != 200 || up.header.Get("X-Auth-User") != want {
			t.Fatalf("%s: %d, X-Auth-User %q", given, w.Code, up.header.Get("X-Auth-User"))
		}
	}
	if userIDOf("Alice@Example.com") != "alice@example.com" || userIDOf("Alice") != "Alice" {
		t.Fatal("userIDOf")
	}
	// A users rule written in another case names the same person.
	q := testRequire(t, &Require{Users: []string{"BOB@example.com"}})
	up := &upstream{}
	if w := serve(t, h, get("/", signIn(t, h, "Bob@Example.COM")), chain(q, up)); w.Code != 200 || up.calls != 1 {
		t.Fatalf("users rule in another case: %d", w.Code)
	}
}
