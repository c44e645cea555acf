package email

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// An account change is its own mail: its subject, its paragraph, and the
// session that made it, with the "Not you?" link.
func TestComposeAccountChanges(t *testing.T) {
	at := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	for _, e := range AccountEvents {
		m, err := Compose(Notice{Name: "Ada", Events: []string{e}, At: at, Device: "Mac", RevokeURL: "https://app.example.com/.auth/revoke?token=x"})
		if err != nil {
			t.Fatalf("%s: %v", e, err)
		}
		if m.Subject != wording[e].subject || !strings.Contains(m.Text, wording[e].why) || strings.Contains(m.Text, "Someone signed in") ||
			!strings.Contains(m.Text, "https://app.example.com/.auth/revoke?token=x") || !strings.Contains(m.HTML, "Mac") {
			t.Fatalf("%s:\n%s\n%s", e, m.Subject, m.Text)
		}
	}
}

// A passkey's mail names the passkey beside the session's device.
func TestComposePasskeyNamesIt(t *testing.T) {
	m, err := Compose(Notice{Events: []string{"passkey_added"}, At: time.Now(), Device: "Mac", Passkey: "Chrome on macOS",
		RevokeURL: "https://app.example.com/.auth/revoke?token=x"})
	if err != nil || m.Subject != "A passkey was added to your account" || !strings.Contains(m.Text, "Passkey:  Chrome on macOS") ||
		!strings.Contains(m.HTML, "Chrome on macOS") || !strings.Contains(m.Text, "This wasn't me") {
		t.Fatalf("%v\n%s\n%s", err, m.Subject, m.Text)
	}
}

// The forgot-password mail is the link alone: no "This wasn't me" link
// to a session, words for whoever did not ask; without a link, no mail.
func TestComposeResetLink(t *testing.T) {
	link := "https://app.example.com/.auth/forgot?token=abc"
	m, err := Compose(Notice{Events: []string{ResetLink}, At: time.Now(), ResetURL: link, RevokeURL: "https://app.example.com/.auth/revoke?token=x"})
	if err != nil || m.Subject != "Reset your password" || !strings.Contains(m.Text, link) || !strings.Contains(m.HTML, `href="`+link+`"`) ||
		strings.Contains(m.Text, "revoke") || !strings.Contains(m.Text, "If you did not ask for this") || strings.Contains(m.Text, "If this was you") {
		t.Fatalf("%v\n%s\n%s", err, m.Subject, m.Text)
	}
	if _, err := Compose(Notice{Events: []string{ResetLink}, At: time.Now(), ResetURL: "javascript:alert(1)"}); !errors.Is(err, ErrNothingToSay) {
		t.Fatalf("a reset mail without a usable link: %v", err)
	}
}
