package accounts

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/sessionauth/caddy-sessionauth/internal/webauthntest"
)

var b64 = webauthntest.B64

const (
	testRPID   = "gw.example.com"
	testOrigin = "https://gw.example.com"
)

func newTestPasskeys(t *testing.T, uv string) (*Passkeys, *ledger) {
	t.Helper()
	l := &ledger{}
	p, err := NewPasskeys(PasskeyConfig{RPID: testRPID, RPName: "Example", Origins: []string{testOrigin}, UserVerification: uv}, l)
	if err != nil {
		t.Fatal(err)
	}
	return p, l
}

var testNow = time.Date(2026, 12, 5, 21, 0, 0, 0, time.UTC)

// register adds k to u through a full registration ceremony.
func register(t *testing.T, p *Passkeys, u *PasskeyUser, k *webauthntest.SoftKey) PasskeyCredential {
	t.Helper()
	options, state, err := p.BeginRegistration(*u)
	if err != nil {
		t.Fatal(err)
	}
	c, err := p.FinishRegistration(context.Background(), *u, state, k.Create(options), testNow)
	if err != nil {
		t.Fatalf("FinishRegistration: %v", err)
	}
	u.Passkeys = append(u.Passkeys, c)
	return c
}

func newUser(name string) PasskeyUser {
	h := make([]byte, 32)
	_, _ = rand.Read(h)
	return PasskeyUser{Handle: h, Name: name, DisplayName: "Alice Example"}
}

func TestPasskeyRegistrationAndDiscoverableLogin(t *testing.T) {
	p, _ := newTestPasskeys(t, "")
	alice := newUser("alice")
	k := webauthntest.New(t, testRPID, testOrigin)
	k.Synced = true

	options, state, err := p.BeginRegistration(alice)
	if err != nil {
		t.Fatal(err)
	}
	o := webauthntest.ReadOptions(t, options)
	if o.PublicKey.RP.ID != testRPID || o.PublicKey.RP.Name != "Example" || o.PublicKey.User.Name != "alice" {
		t.Errorf("options: %s", options)
	}
	if o.PublicKey.AuthenticatorSelection.ResidentKey != "required" || o.PublicKey.AuthenticatorSelection.UserVerification != "preferred" {
		t.Errorf("not a discoverable credential with UV preferred: %s", options)
	}
	if h, _ := b64.DecodeString(o.PublicKey.User.ID); !bytes.Equal(h, alice.Handle) {
		t.Errorf("user.id %q is not the handle", o.PublicKey.User.ID)
	}
	cred, err := p.FinishRegistration(context.Background(), alice, state, k.Create(options), testNow)
	if err != nil {
		t.Fatalf("FinishRegistration: %v", err)
	}
	if !bytes.Equal(cred.ID, k.ID) || len(cred.PublicKey) == 0 || cred.SignCount != 0 || len(cred.AAGUID) != 16 {
		t.Errorf("credential %+v", cred)
	}
	if fmt.Sprint(cred.Transports) != "[internal hybrid]" || !cred.UserPresent || !cred.UserVerified || !cred.BackupEligible || !cred.BackupState {
		t.Errorf("credential transports and flags %+v", cred)
	}
	alice.Passkeys = []PasskeyCredential{cred}

	// A second registration excludes the first passkey, and the same
	// passkey again is refused.
	options, state, err = p.BeginRegistration(alice)
	if err != nil {
		t.Fatal(err)
	}
	if o := webauthntest.ReadOptions(t, options); len(o.PublicKey.ExcludeCredentials) != 1 || o.PublicKey.ExcludeCredentials[0].ID != b64.EncodeToString(k.ID) {
		t.Errorf("existing passkey not excluded: %s", options)
	}
	if _, err := p.FinishRegistration(context.Background(), alice, state, k.Create(options), testNow); !errors.Is(err, ErrPasskeyRefused) {
		t.Errorf("the same passkey twice: %v", err)
	}

	// Sign-in with no user name: the authenticator names the account.
	options, state, err = p.BeginDiscoverableLogin()
	if err != nil {
		t.Fatal(err)
	}
	if o := webauthntest.ReadOptions(t, options); o.PublicKey.RPID != testRPID || len(o.PublicKey.AllowCredentials) != 0 || o.PublicKey.Challenge == "" {
		t.Errorf("discoverable options: %s", options)
	}
	var looked [2][]byte
	lookup := func(handle, id []byte) (PasskeyUser, error) {
		looked = [2][]byte{handle, id}
		if bytes.Equal(handle, alice.Handle) {
			return alice, nil
		}
		return PasskeyUser{}, errors.New("no such account")
	}
	login, err := p.FinishDiscoverableLogin(context.Background(), state, k.Get(options), lookup, testNow)
	if err != nil {
		t.Fatalf("FinishDiscoverableLogin: %v", err)
	}
	if !bytes.Equal(looked[0], alice.Handle) || !bytes.Equal(looked[1], k.ID) {
		t.Errorf("lookup got %x", looked)
	}
	if login.User.Name != "alice" || !bytes.Equal(login.Credential.ID, k.ID) || login.Credential.SignCount != 1 || !login.UserVerified {
		t.Errorf("login %+v", login)
	}

	// Without user verification the passkey still signs in, but says so:
	// it is not complete on its own.
	alice.Passkeys[0] = login.Credential
	k.UV = false
	options, state, _ = p.BeginDiscoverableLogin()
	login, err = p.FinishDiscoverableLogin(context.Background(), state, k.Get(options), lookup, testNow)
	if err != nil || login.UserVerified || login.Credential.SignCount != 2 {
		t.Errorf("without UV: %+v, %v", login, err)
	}

	// An authenticator whose handle no account has.
	stranger := webauthntest.New(t, testRPID, testOrigin)
	stranger.Handle = []byte("nobody's handle")
	options, state, _ = p.BeginDiscoverableLogin()
	if _, err := p.FinishDiscoverableLogin(context.Background(), state, stranger.Get(options), lookup, testNow); !errors.Is(err, ErrPasskeyRefused) {
		t.Errorf("unknown account: %v", err)
	}
	// Alice's handle, but a passkey she does not have.
	stranger.Handle = alice.Handle
	options, state, _ = p.BeginDiscoverableLogin()
	if _, err := p.FinishDiscoverableLogin(context.Background(), state, stranger.Get(options), lookup, testNow); !errors.Is(err, ErrPasskeyRefused) {
		t.Errorf("a passkey the account does not have: %v", err)
	}
}

func TestPasskeySecondFactor(t *testing.T) {
	p, _ := newTestPasskeys(t, "preferred")
	alice, bob := newUser("alice"), newUser("bob")
	ka, kb := webauthntest.New(t, testRPID, testOrigin), webauthntest.New(t, testRPID, testOrigin)
	register(t, p, &alice, ka)
	register(t, p, &bob, kb)

	if _, _, err := p.BeginLogin(newUser("carol")); !errors.Is(err, ErrNoPasskey) {
		t.Errorf("BeginLogin with no passkey: %v", err)
	}
	options, state, err := p.BeginLogin(alice)
	if err != nil {
		t.Fatal(err)
	}
	if o := webauthntest.ReadOptions(t, options); len(o.PublicKey.AllowCredentials) != 1 || o.PublicKey.AllowCredentials[0].ID != b64.EncodeToString(ka.ID) {
		t.Errorf("allowCredentials: %s", options)
	}
	ka.UV = false // a security key touched, no PIN: fine as a second factor
	login, err := p.FinishLogin(context.Background(), alice, state, ka.Get(options), testNow)
	if err != nil {
		t.Fatalf("FinishLogin: %v", err)
	}
	if login.User.Name != "alice" || login.Credential.SignCount != 1 || login.UserVerified {
		t.Errorf("login %+v", login)
	}

	// Bob's passkey does not pass Alice's check, nor Alice's state Bob's.
	options, state, _ = p.BeginLogin(alice)
	if _, err := p.FinishLogin(context.Background(), alice, state, kb.Get(options), testNow); !errors.Is(err, ErrPasskeyRefused) {
		t.Errorf("another user's passkey: %v", err)
	}
	options, state, _ = p.BeginLogin(alice)
	if _, err := p.FinishLogin(context.Background(), bob, state, kb.Get(options), testNow); !errors.Is(err, ErrPasskeyRefused) {
		t.Errorf("another user's state: %v", err)
	}

	// A state begun for one ceremony does not finish another.
	_, regState, _ := p.BeginRegistration(alice)
	_, discState, _ := p.BeginDiscoverableLogin()
	options, _, _ = p.BeginLogin(alice)
	for name, s := range map[string][]byte{"registration": regState, "discoverable": discState, "empty": nil, "garbage": []byte("lxyz")} {
		if _, err := p.FinishLogin(context.Background(), alice, s, ka.Get(options), testNow); !errors.Is(err, ErrPasskeyRefused) {
			t.Errorf("a %s state in FinishLogin: %v", name, err)
		}
	}

	// Garbled answers: refused, never a panic.
	for _, body := range [][]byte{nil, []byte("{}"), []byte("not json"), []byte(`{"id":1}`), bytes.Repeat([]byte(" "), passkeyMaxBody+1)} {
		_, state, _ = p.BeginLogin(alice)
		if _, err := p.FinishLogin(context.Background(), alice, state, body, testNow); !errors.Is(err, ErrPasskeyRefused) {
			t.Errorf("body %.20q: %v", body, err)
		}
	}
	// A forged signature.
	options, state, _ = p.BeginLogin(alice)
	var forged map[string]any
	_ = json.Unmarshal(ka.Get(options), &forged)
	forged["response"].(map[string]any)["signature"] = b64.EncodeToString([]byte("0E\x02\x20not a signature at all......\x02\x21"))
	body, _ := json.Marshal(forged)
	if _, err := p.FinishLogin(context.Background(), alice, state, body, testNow); !errors.Is(err, ErrPasskeyRefused) {
		t.Errorf("forged signature: %v", err)
	}
}

func TestPasskeyUserVerificationRequired(t *testing.T) {
	p, _ := newTestPasskeys(t, "required")
	alice := newUser("alice")
	k := webauthntest.New(t, testRPID, testOrigin)
	k.UV = false
	options, state, _ := p.BeginRegistration(alice)
	if o := webauthntest.ReadOptions(t, options); o.PublicKey.AuthenticatorSelection.UserVerification != "required" {
		t.Errorf("options: %s", options)
	}
	if _, err := p.FinishRegistration(context.Background(), alice, state, k.Create(options), testNow); !errors.Is(err, ErrPasskeyRefused) {
		t.Errorf("registration without UV: %v", err)
	}
	k.UV = true
	register(t, p, &alice, k)
	k.UV = false
	options, state, _ = p.BeginDiscoverableLogin()
	lookup := func([]byte, []byte) (PasskeyUser, error) { return alice, nil }
	if _, err := p.FinishDiscoverableLogin(context.Background(), state, k.Get(options), lookup, testNow); !errors.Is(err, ErrPasskeyRefused) {
		t.Errorf("sign-in without UV: %v", err)
	}
}

func TestPasskeyRefusals(t *testing.T) {
	p, l := newTestPasskeys(t, "")
	alice := newUser("alice")
	k := webauthntest.New(t, testRPID, testOrigin)
	register(t, p, &alice, k)
	lookup := func([]byte, []byte) (PasskeyUser, error) { return alice, nil }

	t.Run("wrong origin", func(t *testing.T) {
		evil := *k
		evil.Origin = "https://gw.example.com.evil.test"
		options, state, _ := p.BeginDiscoverableLogin()
		if _, err := p.FinishDiscoverableLogin(context.Background(), state, evil.Get(options), lookup, testNow); !errors.Is(err, ErrPasskeyRefused) {
			t.Errorf("sign-in from another origin: %v", err)
		}
		other := webauthntest.New(t, testRPID, "http://gw.example.com")
		options, state, _ = p.BeginRegistration(alice)
		if _, err := p.FinishRegistration(context.Background(), alice, state, other.Create(options), testNow); !errors.Is(err, ErrPasskeyRefused) {
			t.Errorf("registration from another origin: %v", err)
		}
		// The right origin, another relying party's key scope.
		otherRP := webauthntest.New(t, "example.org", testOrigin)
		options, state, _ = p.BeginRegistration(alice)
		if _, err := p.FinishRegistration(context.Background(), alice, state, otherRP.Create(options), testNow); !errors.Is(err, ErrPasskeyRefused) {
			t.Errorf("registration for another RP ID: %v", err)
		}
	})

	t.Run("wrong challenge", func(t *testing.T) {
		_, state, _ := p.BeginDiscoverableLogin()
		other, _, _ := p.BeginDiscoverableLogin()
		if _, err := p.FinishDiscoverableLogin(context.Background(), state, k.Get(other), lookup, testNow); !errors.Is(err, ErrPasskeyRefused) {
			t.Errorf("answer to another challenge: %v", err)
		}
		_, state, _ = p.BeginLogin(alice)
		if _, err := p.FinishLogin(context.Background(), alice, state, k.GetWith(b64.EncodeToString(make([]byte, 32))), testNow); !errors.Is(err, ErrPasskeyRefused) {
			t.Errorf("answer to a made-up challenge: %v", err)
		}
		_, state, _ = p.BeginRegistration(alice)
		other, _, _ = p.BeginRegistration(alice)
		k2 := webauthntest.New(t, testRPID, testOrigin)
		if _, err := p.FinishRegistration(context.Background(), alice, state, k2.Create(other), testNow); !errors.Is(err, ErrPasskeyRefused) {
			t.Errorf("registration answering another challenge: %v", err)
		}
	})

	t.Run("replayed state", func(t *testing.T) {
		options, state, _ := p.BeginDiscoverableLogin()
		login, err := p.FinishDiscoverableLogin(context.Background(), state, k.Get(options), lookup, testNow)
		if err != nil {
			t.Fatal(err)
		}
		alice.Passkeys[0] = login.Credential
		// The same state again, with a fresh and valid answer to it.
		if _, err := p.FinishDiscoverableLogin(context.Background(), state, k.Get(options), lookup, testNow.Add(time.Second)); !errors.Is(err, ErrPasskeyStateUsed) {
			t.Errorf("state used twice: %v", err)
		}
		// A failed answer uses the state up too.
		options, state, _ = p.BeginLogin(alice)
		if _, err := p.FinishLogin(context.Background(), alice, state, []byte("{}"), testNow); !errors.Is(err, ErrPasskeyRefused) {
			t.Fatal(err)
		}
		if _, err := p.FinishLogin(context.Background(), alice, state, k.Get(options), testNow); !errors.Is(err, ErrPasskeyStateUsed) {
			t.Errorf("state after a failed answer: %v", err)
		}
		// A registration's state too.
		options, state, _ = p.BeginRegistration(alice)
		k3 := webauthntest.New(t, testRPID, testOrigin)
		body := k3.Create(options)
		if _, err := p.FinishRegistration(context.Background(), alice, state, body, testNow); err != nil {
			t.Fatal(err)
		}
		if _, err := p.FinishRegistration(context.Background(), alice, state, body, testNow); !errors.Is(err, ErrPasskeyStateUsed) {
			t.Errorf("registration state used twice: %v", err)
		}
		// When the ledger cannot say, the state is refused.
		l.err = errors.New("store down")
		options, state, _ = p.BeginLogin(alice)
		if _, err := p.FinishLogin(context.Background(), alice, state, k.Get(options), testNow); !errors.Is(err, ErrPasskeyStateUsed) {
			t.Errorf("ledger down: %v", err)
		}
		l.err = nil
	})

	t.Run("counter going back", func(t *testing.T) {
		options, state, _ := p.BeginLogin(alice)
		login, err := p.FinishLogin(context.Background(), alice, state, k.Get(options), testNow)
		if err != nil {
			t.Fatal(err)
		}
		alice.Passkeys[0] = login.Credential
		stored := login.Credential.SignCount
		// A copy of the key, behind: its count goes back.
		k.Count = stored - 2
		options, state, _ = p.BeginLogin(alice)
		login, err = p.FinishLogin(context.Background(), alice, state, k.Get(options), testNow)
		if !errors.Is(err, ErrPasskeyCloned) {
			t.Fatalf("count %d after %d: %v", k.Count, stored, err)
		}
		if login.User.Name != "alice" || !bytes.Equal(login.Credential.ID, k.ID) || login.Credential.SignCount != stored {
			t.Errorf("a clone's result names %+v", login)
		}
		// The same count again is a clone's too.
		k.Count = stored - 1
		options, state, _ = p.BeginDiscoverableLogin()
		if _, err := p.FinishDiscoverableLogin(context.Background(), state, k.Get(options), lookup, testNow); !errors.Is(err, ErrPasskeyCloned) {
			t.Errorf("count %d again: %v", stored, err)
		}
		// Authenticators that keep no count (always 0) are not clones.
		zero := webauthntest.New(t, testRPID, testOrigin)
		bob := newUser("bob")
		register(t, p, &bob, zero)
		for range 2 {
			zero.Count = ^uint32(0) // get adds one: 0
			options, state, _ = p.BeginLogin(bob)
			if _, err := p.FinishLogin(context.Background(), bob, state, zero.Get(options), testNow); err != nil {
				t.Errorf("an authenticator without a counter: %v", err)
			}
		}
	})
}

func TestNewPasskeysConfig(t *testing.T) {
	for _, c := range []PasskeyConfig{
		{RPID: "", Origins: []string{testOrigin}},
		{RPID: testRPID},
		{RPID: testRPID, Origins: []string{testOrigin}, UserVerification: "discouraged"},
		{RPID: "https://gw.example.com/", Origins: []string{testOrigin}},
	} {
		if _, err := NewPasskeys(c, &ledger{}); err == nil {
			t.Errorf("NewPasskeys(%+v): no error", c)
		}
	}
	if _, err := NewPasskeys(PasskeyConfig{RPID: testRPID, Origins: []string{testOrigin}}, &ledger{}); err != nil {
		t.Errorf("RP name defaults: %v", err)
	}
}
