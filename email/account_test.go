package email

import (
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
