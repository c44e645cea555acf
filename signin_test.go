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
