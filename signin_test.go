package sessionauth

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
	"golang.org/x/crypto/bcrypt"

	"github.com/sessionauth/caddy-sessionauth/accounts"
)

// accounts_file adds its blocks to the config's; an account in both is
// refused.
func TestAccountsFileAddsAccounts(t *testing.T) {
	hash, _ := bcrypt.GenerateFromPassword([]byte("demo"), bcrypt.MinCost)
	file := filepath.Join(t.TempDir(), "accounts")
	if err := os.WriteFile(file, []byte("carol "+string(hash)+" {\n\temail carol@example.com\n\ttotp {env.CAROL_TOTP}\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CAROL_TOTP", "jbsw y3dp ehpk 3pxp")
	dir := testDirectory(t, &SignIn{Accounts: []*Account{{User: "alice", Hash: string(hash)}}, AccountsFile: file})
	carol, ok := dir.Lookup("carol")
	if !ok || carol.Email != "carol@example.com" || carol.TOTP != "JBSWY3DPEHPK3PXP" {
		t.Fatalf("accounts_file: %+v", carol)
	}
	if _, ok := dir.Check("nobody", "demo"); ok {
		t.Fatal("an unknown name signed in")
	}
	if a, ok := dir.Check("alice", "demo"); !ok || a.User != "alice" {
		t.Fatal("alice's password")
	}
	if _, ok := dir.Check("carol", "other"); ok {
		t.Fatal("carol's wrong password")
	}

	dup := &Handler{SignIn: &SignIn{Accounts: []*Account{{User: "carol", Hash: string(hash)}}, AccountsFile: file}}
	if _, err := newSignIn(dup); err == nil {
		t.Fatal("an account in both the config and the file was accepted")
	}
}

// bcrypt reads 72 bytes of a password: a longer one never matches, not
// even the account whose password is its first 72 bytes (which
// `caddy hash-password` would not hash anyway).
func TestPasswordOver72BytesNeverMatches(t *testing.T) {
	pw := strings.Repeat("p", 72)
	hash, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	dir := testDirectory(t, &SignIn{Accounts: []*Account{{User: "alice", Hash: string(hash)}}})
	if _, ok := dir.Check("alice", pw); !ok {
		t.Fatal("the 72-byte password")
	}
	for _, longer := range []string{pw + "x", pw + strings.Repeat("y", 100)} {
		if _, ok := dir.Check("alice", longer); ok {
			t.Fatalf("a %d-byte password matched its 72-byte prefix", len(longer))
		}
	}
	if _, err := caddyHashPasswordErr("q" + pw); err == nil {
		t.Fatal("caddy hash-password hashed a password over 72 bytes with bcrypt")
	}
}

// An argon2id hash from `caddy hash-password --algorithm argon2id` signs
// in, in the Caddyfile's accounts and in accounts_file alike; a hash
// that is neither bcrypt nor argon2id, or an argon2id one cut short, is
// an error in words (no library's internals) naming the hash's own
// file and line.
func TestArgon2idAccounts(t *testing.T) {
	argon := caddyHashPassword(t, "demo", "--algorithm", "argon2id", "--argon2id-memory", "8192")
	input := "session_auth {\n  sign_in {\n    accounts {\n      alice " + argon + " {\n        email alice@example.com\n      }\n    }\n  }\n}"
	var h Handler
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input)); err != nil {
		t.Fatalf("an argon2id hash in the Caddyfile: %v", err)
	}
	file := filepath.Join(t.TempDir(), "accounts")
	if err := os.WriteFile(file, []byte("bob "+argon+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h.SignIn.AccountsFile = file
	dir := testDirectory(t, h.SignIn)
	for _, user := range []string{"alice", "bob"} {
		_, right := dir.Check(user, "demo")
		_, wrong := dir.Check(user, "demo2")
		if !right || wrong {
			t.Fatalf("%s's argon2id password", user)
		}
	}

	for _, bad := range []struct{ hash, want string }{
		{argon[:len(argon)-10] + "!!!!", "this argon2id hash does not read"},
		{"$argon2id$v=19$m=99999999,t=1,p=1$c2FsdHNhbHRzYWx0$" + strings.Repeat("A", 43), "at most 1048576 are accepted"},
		{"$2a$10$tooshort", "this bcrypt hash is cut short"},
		{"$2a$99$" + strings.Repeat("a", 53), "bcrypt cost 99 is not between 4 and 31"},
		{"$2a$10$" + strings.Repeat("a", 52) + "!", "this bcrypt hash has characters no bcrypt hash has"},
		{"plaintext", "must be a bcrypt or argon2id hash as `caddy hash-password` prints it"},
	} {
		input := "session_auth {\n  sign_in {\n    accounts {\n      alice " + bad.hash + " {\n        email alice@example.com\n      }\n    }\n  }\n}"
		err := (&Handler{}).UnmarshalCaddyfile(caddyfile.NewTestDispenser(input))
		if err == nil || !strings.Contains(err.Error(), bad.want) || !strings.Contains(err.Error(), "Testfile:4") || strings.Contains(err.Error(), "crypto/") {
			t.Errorf("hash %q in the Caddyfile: %v", bad.hash, err)
		}
		if err := os.WriteFile(file, []byte("# accounts\n\ncarol "+bad.hash+" {\n\temail carol@example.com\n}\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err = newSignIn(&Handler{SignIn: &SignIn{AccountsFile: file}})
		if err == nil || !strings.Contains(err.Error(), bad.want) || !strings.Contains(err.Error(), file+":3") || strings.Contains(err.Error(), "crypto/") {
			t.Errorf("hash %q in accounts_file: %v", bad.hash, err)
		}
	}
}

// testDirectory is the accounts directory of si, as Provision makes it.
func testDirectory(t *testing.T, si *SignIn) *accounts.Directory {
	t.Helper()
	p, err := newSignIn(&Handler{SignIn: si, nameKey: []byte("test key")})
	if err != nil {
		t.Fatal(err)
	}
	return p.local.dir
}

// caddyHashPassword is what `caddy hash-password --plaintext pw args…`
// prints, run through Caddy's own command.
func caddyHashPassword(t *testing.T, pw string, args ...string) string {
	t.Helper()
	out, err := caddyHashPasswordErr(pw, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func caddyHashPasswordErr(pw string, args ...string) (string, error) {
	def := caddycmd.Commands()["hash-password"]
	cmd := &cobra.Command{Use: def.Name, SilenceUsage: true, SilenceErrors: true}
	def.CobraFunc(cmd)
	cmd.SetArgs(append([]string{"--plaintext", pw}, args...))
	r, w, err := os.Pipe()
	if err != nil {
		return "", err
	}
	stdout := os.Stdout
	os.Stdout = w
	err = cmd.Execute()
	os.Stdout = stdout
	w.Close()
	var out bytes.Buffer
	_, _ = io.Copy(&out, r)
	r.Close()
	return strings.TrimSpace(out.String()), err
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
