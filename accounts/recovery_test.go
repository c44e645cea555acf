package accounts

import (
	"regexp"
	"strings"
	"testing"
)

func TestMakeRecoveryCodes(t *testing.T) {
	codes, hashes, err := MakeRecoveryCodes()
	if err != nil {
		t.Fatal(err)
	}
	if len(codes) != RecoveryCodeCount || len(hashes) != RecoveryCodeCount {
		t.Fatalf("%d codes, %d hashes", len(codes), len(hashes))
	}
	form := regexp.MustCompile(`^[a-z0-9]{5}-[a-z0-9]{5}$`)
	seen := map[string]bool{}
	salt := ""
	for i, c := range codes {
		if !form.MatchString(c) {
			t.Errorf("code %q is not two groups of 5 lowercase letters and digits", c)
		}
		if seen[c] {
			t.Errorf("code %q twice", c)
		}
		seen[c] = true
		if strings.Contains(hashes[i], c) || strings.Contains(hashes[i], strings.ReplaceAll(c, "-", "")) {
			t.Errorf("hash %q holds its code", hashes[i])
		}
		a, err := decodeArgon2id(hashes[i])
		if err != nil {
			t.Fatalf("hash %q: %v", hashes[i], err)
		}
		if salt == "" {
			salt = string(a.salt)
		} else if string(a.salt) != salt {
			t.Error("the codes of one set have different salts: a check would cost a hash per code")
		}
	}
	// A new set: new codes and a new salt.
	codes2, hashes2, err := MakeRecoveryCodes()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range codes2 {
		if seen[c] {
			t.Errorf("code %q in two sets", c)
		}
	}
	if a, _ := decodeArgon2id(hashes2[0]); string(a.salt) == salt {
		t.Error("two sets share a salt")
	}
	if _, ok := MatchRecoveryCode(codes[0], hashes2); ok {
		t.Error("a code of one set matched another set")
	}
}

func TestMatchRecoveryCode(t *testing.T) {
	codes, hashes, err := MakeRecoveryCodes()
	if err != nil {
		t.Fatal(err)
	}
	plain := strings.ReplaceAll(codes[3], "-", "")
	for _, c := range []struct {
		typed string
		index int
	}{
		{codes[3], 3},
		{codes[0], 0},
		{codes[9], 9},
		{strings.ToUpper(codes[3]), 3},
		{plain, 3},                                // no dash
		{plain[:2] + "-" + plain[2:], 3},          // the dash elsewhere
		{"  " + plain[:5] + " - " + plain[5:], 3}, // spaces
		{plain[:5] + "--" + plain[5:] + "\t", 3},  // extra dash, a tab
		{plain[:5] + "\u2013" + plain[5:], 3},     // an en dash from a word processor
		{plain[:9], -1},                           // short
		{plain + "a", -1},                         // long
		{plain[:9] + string(other(plain[9])), -1}, // one character wrong
		{plain[:5] + "_" + plain[5:], -1},         // not a code's character
		{"", -1},
	} {
		i, ok := MatchRecoveryCode(c.typed, hashes)
		if i != c.index || ok != (c.index >= 0) {
			t.Errorf("MatchRecoveryCode(%q) = %d, %v; want %d", c.typed, i, ok, c.index)
		}
	}

	// A used code is removed by the caller (or its hash blanked): it no
	// longer matches, the others still do.
	used := append(append([]string{}, hashes[:3]...), hashes[4:]...)
	if _, ok := MatchRecoveryCode(codes[3], used); ok {
		t.Error("a removed code still matched")
	}
	if i, ok := MatchRecoveryCode(codes[4], used); !ok || i != 3 {
		t.Errorf("after a removal, the next code is at %d, %v", i, ok)
	}
	blanked := append([]string{}, hashes...)
	blanked[3] = ""
	if _, ok := MatchRecoveryCode(codes[3], blanked); ok {
		t.Error("a blanked code still matched")
	}

	// Damaged or hostile hashes are skipped, never a panic or a huge
	// allocation.
	bad := []string{"", "x", "$argon2id$v=19$m=99999999,t=1,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5", "$2a$10$abc", hashes[3]}
	if i, ok := MatchRecoveryCode(codes[3], bad); !ok || i != 4 {
		t.Errorf("among damaged hashes: %d, %v", i, ok)
	}
	if _, ok := MatchRecoveryCode(codes[3], nil); ok {
		t.Error("matched with no codes")
	}
}

// other is a code character that is not c.
func other(c byte) byte {
	if c == 'a' {
		return 'b'
	}
	return 'a'
}
