package accounts

import (
	"context"
	"crypto/rand"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// ledger is a Ledger in memory, as the session store's Hit counts.
type ledger struct {
	mu   sync.Mutex
	hits map[string]int64
	err  error
}

func (l *ledger) Hit(_ context.Context, key string, _ time.Duration, _ time.Time) (int64, time.Duration, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return 0, 0, l.err
	}
	if l.hits == nil {
		l.hits = map[string]int64{}
	}
	l.hits[key]++
	return l.hits[key], 0, nil
}

func bcryptHash(t *testing.T, pw string, cost int) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), cost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// argon2Hash writes pw's argon2id hash as `caddy hash-password
// --algorithm argon2id --argon2id-memory m` does (t=1, p=1, 32-byte key,
// 16-byte salt).
func argon2Hash(pw string, m uint32) string {
	salt := make([]byte, 16)
	_, _ = rand.Read(salt)
	return string(argon2idHash{memory: m, time: 1, threads: 1, salt: salt, key: argon2.IDKey([]byte(pw), salt, 1, m, 1, 32)}.encode())
}

func TestCheck(t *testing.T) {
	d := New([]Account{
		{User: "alice", Hash: bcryptHash(t, "demo", bcrypt.MinCost), Email: "alice@example.com", Roles: []string{"admin"}},
		{User: "bob", Hash: argon2Hash("demo", 1024)},
	}, []byte("key"), &ledger{})
	if d.Len() != 2 {
		t.Fatalf("Len %d", d.Len())
	}
	for _, c := range []struct {
		name, pw string
		ok       bool
	}{
		{"alice", "demo", true}, {"alice", "demo2", false}, {"alice", "", false},
		{"bob", "demo", true}, {"bob", "Demo", false},
		{"nobody", "demo", false}, {"", "", false}, {"Alice", "demo", false},
	} {
		a, ok := d.Check(c.name, c.pw)
		if ok != c.ok || (ok && a.User != c.name) || (!ok && a.User != "") {
			t.Errorf("Check(%q, %q) = %+v, %v", c.name, c.pw, a, ok)
		}
	}
	if a, ok := d.Lookup("alice"); !ok || a.Email != "alice@example.com" || a.Roles[0] != "admin" {
		t.Fatalf("Lookup: %+v", a)
	}
	if _, ok := d.Lookup("nobody"); ok {
		t.Fatal("Lookup of an unknown name")
	}
	var none *Directory
	if _, ok := none.Lookup("alice"); ok || none.Len() != 0 {
		t.Fatal("a nil directory has accounts")
	}
}

// bcrypt reads 72 bytes of a password: a longer one never matches, not
// even the account whose password is its first 72 bytes.
func TestPasswordOver72BytesNeverMatches(t *testing.T) {
	pw := strings.Repeat("p", BcryptMaxPassword)
	d := New([]Account{{User: "alice", Hash: bcryptHash(t, pw, bcrypt.MinCost)}}, nil, &ledger{})
	if _, ok := d.Check("alice", pw); !ok {
		t.Fatal("the 72-byte password")
	}
	for _, longer := range []string{pw + "x", pw + strings.Repeat("y", 100)} {
		if _, ok := d.Check("alice", longer); ok {
			t.Fatalf("a %d-byte password matched its 72-byte prefix", len(longer))
		}
	}
}

// An unknown name is compared with a hash of the class (bcrypt cost,
// argon2id parameters) of the account its keyed hash picks: over many
// names every class of the accounts is compared, as often as accounts
// have it; the same name always with the same hash (a repeated
// measurement tells nothing); a known name with its own hash. Which
// class a name gets depends on the key, which the store does not hold.
func TestUnknownNameCostsWhatAnAccountCosts(t *testing.T) {
	cheap, dear, argon := bcryptHash(t, "demo", 4), bcryptHash(t, "demo", 5), argon2Hash("demo", 1024)
	list := []Account{{User: "alice", Hash: cheap}, {User: "bob", Hash: cheap}, {User: "carol", Hash: dear}, {User: "dave", Hash: argon}}
	var compared []byte
	spy := func(hash []byte, _ string) bool { compared = hash; return false }
	d := New(list, []byte("key one"), &ledger{})
	d.compare = spy
	classOf := func(name string) string {
		d.Check(name, "wrong")
		return hashClass(string(compared))
	}
	if got := classOf("carol"); got != hashClass(dear) || string(compared) != dear {
		t.Fatalf("a known name is compared with %q", compared)
	}
	counts := map[string]int{}
	first := map[string]string{}
	for i := range 400 {
		name := "user" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + string(rune('0'+i/26))
		c := classOf(name)
		counts[c]++
		first[name] = string(compared)
		if classOf(name); string(compared) != first[name] {
			t.Fatalf("%s compared with two hashes", name)
		}
		if string(compared) == cheap || string(compared) == dear || string(compared) == argon {
			t.Fatalf("%s compared with an account's own hash", name)
		}
	}
	want := map[string]float64{hashClass(cheap): 0.5, hashClass(dear): 0.25, hashClass(argon): 0.25}
	for class, share := range want {
		if got := float64(counts[class]) / 400; got < share-0.1 || got > share+0.1 {
			t.Errorf("class %s: %.2f of unknown names, want about %.2f (%v)", class, got, share, counts)
		}
	}
	if len(counts) != len(want) {
		t.Fatalf("classes compared: %v", counts)
	}
	// Another key (another site, another link_secret): other picks.
	d = New(list, []byte("key two"), &ledger{})
	d.compare = spy
	moved := 0
	for name, hash := range first {
		classOf(name)
		if string(compared) != hash {
			moved++
		}
	}
	if moved == 0 {
		t.Fatal("the key does not decide which hash an unknown name gets")
	}
}

// The dummy of a class costs what the class costs: an argon2id dummy
// has the account's parameters and lengths, a bcrypt one its cost; and
// no password anyone knows matches it.
func TestDummiesHaveTheAccountsClass(t *testing.T) {
	for _, hash := range []string{bcryptHash(t, "demo", 5), argon2Hash("demo", 2048)} {
		dummy := string(dummyFor(hash))
		if hashClass(dummy) != hashClass(hash) || dummy == hash {
			t.Fatalf("dummy %q for %q", dummy, hash)
		}
		if err := CheckHash(dummy); err != nil {
			t.Fatalf("dummy %q: %v", dummy, err)
		}
		if comparePassword([]byte(dummy), "demo") || comparePassword([]byte(dummy), "") {
			t.Fatal("a known password matches a dummy")
		}
	}
}

func TestCheckHash(t *testing.T) {
	argon := argon2Hash("demo", 8192)
	if err := CheckHash(argon); err != nil {
		t.Fatalf("argon2id: %v", err)
	}
	if err := CheckHash(bcryptHash(t, "demo", bcrypt.MinCost)); err != nil {
		t.Fatalf("bcrypt: %v", err)
	}
	for _, bad := range []struct{ hash, want string }{
		{argon[:len(argon)-10] + "!!!!", "this argon2id hash does not read (decode key: illegal base64 data"},
		{"$argon2id$v=18$m=1024,t=1,p=1$c2FsdHNhbHRzYWx0$" + strings.Repeat("A", 43), "incompatible version: 18"},
		{"$argon2id$v=19$m=1024,t=1$c2FsdHNhbHRzYWx0$" + strings.Repeat("A", 43), "invalid parameters"},
		{"$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHRzYWx0", "invalid hash format"},
		{"$argon2id$v=19$m=99999999,t=1,p=1$c2FsdHNhbHRzYWx0$" + strings.Repeat("A", 43), "at most 1048576 are accepted"},
		{"$argon2id$v=19$m=1024,t=65,p=1$c2FsdHNhbHRzYWx0$" + strings.Repeat("A", 43), "65 iterations; at most 64"},
		{"$argon2id$v=19$m=1024,t=1,p=0$c2FsdHNhbHRzYWx0$" + strings.Repeat("A", 43), "m, t and p of at least 1"},
		{"$argon2id$v=19$m=1024,t=1,p=1$c2FsdA$" + strings.Repeat("A", 43), "a salt shorter than 8"},
		{"$2a$10$tooshort", "this bcrypt hash is cut short"},
		{"$2a$99$" + strings.Repeat("a", 53), "bcrypt cost 99 is not between 4 and 31"},
		{"$2a$10$" + strings.Repeat("a", 52) + "!", "this bcrypt hash has characters no bcrypt hash has"},
		{"plaintext", "must be a bcrypt or argon2id hash as `caddy hash-password` prints it"},
	} {
		if err := CheckHash(bad.hash); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("CheckHash(%q) = %v, want %q", bad.hash, err, bad.want)
		}
	}
}

func TestTOTPSecret(t *testing.T) {
	if s, err := TOTPSecret("jbsw y3dp ehpk 3pxp"); err != nil || s != "JBSWY3DPEHPK3PXP" {
		t.Fatalf("TOTPSecret = %q, %v", s, err)
	}
	if _, err := TOTPSecret("not base32!"); err == nil || err.Error() != "must be a base32 secret" {
		t.Fatalf("a secret that is not base32: %v", err)
	}
}

// A code is good in its 30 s step and its neighbours, in the ways apps
// show it; once: a second use of the step is refused, as is any code
// when the ledger cannot say it was not used.
func TestCheckTOTP(t *testing.T) {
	const secret = "JBSWY3DPEHPK3PXP"
	now := time.Unix(1800000000, 0)
	code := func(at time.Time) string {
		c, err := TOTPCode(secret, at)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	// RFC 6238's SHA-1 test vector, on its own secret ("12345678901234567890"), in 6 digits.
	if c, _ := TOTPCode("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", time.Unix(59, 0)); c != "287082" {
		t.Fatalf("RFC 6238 vector: %s", c)
	}
	l := &ledger{}
	d := New([]Account{{User: "bob", Hash: bcryptHash(t, "demo", bcrypt.MinCost), TOTP: secret}}, nil, l)
	bob, _ := d.Lookup("bob")
	ctx := context.Background()

	c := code(now)
	if err := d.CheckTOTP(ctx, bob, c[:3]+" "+c[3:], now); err != nil {
		t.Fatalf("this step's code: %v", err)
	}
	if err := d.CheckTOTP(ctx, bob, c, now); err != ErrCodeUsed {
		t.Fatalf("the same code again: %v", err)
	}
	if err := d.CheckTOTP(ctx, bob, c, now.Add(CodeStep)); err != ErrCodeUsed {
		t.Fatalf("the same code a step later (a neighbour): %v", err)
	}
	if err := d.CheckTOTP(ctx, bob, code(now.Add(-CodeStep)), now); err != nil {
		t.Fatalf("the step before's code: %v", err)
	}
	p := code(now.Add(CodeStep))
	if err := d.CheckTOTP(ctx, bob, p[:3]+"-"+p[3:], now); err != nil {
		t.Fatalf("the step after's code, with a dash: %v", err)
	}
	for _, wrong := range []string{code(now.Add(5 * CodeStep)), "12345", "1234567", "", "abcdef"} {
		if wrong == c || wrong == p {
			continue
		}
		if err := d.CheckTOTP(ctx, bob, wrong, now); err != ErrWrongCode {
			t.Errorf("code %q: %v", wrong, err)
		}
	}
	if err := d.CheckTOTP(ctx, Account{User: "alice"}, c, now); err != ErrWrongCode {
		t.Fatalf("an account without TOTP: %v", err)
	}

	l.err = context.DeadlineExceeded
	later := now.Add(10 * CodeStep)
	if err := d.CheckTOTP(ctx, bob, code(later), later); err != ErrCodeUsed {
		t.Fatalf("a right code the ledger cannot count: %v", err)
	}
}
