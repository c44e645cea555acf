package email

import (
	"bytes"
	"net/mail"
	"strings"
	"testing"
	"time"
)

var at = time.Date(2026, 11, 29, 11, 42, 0, 0, time.FixedZone("CET", 3600))

func TestComposeSaysWhatHappenedWhenAndWhere(t *testing.T) {
	m, err := Compose(Notice{
		To: "ada@example.com", Name: "Ada", Events: []string{"new_login", "new_device"}, At: at,
		Device: "iPhone", Browser: "Chrome", OS: "iOS", Place: "Berlin, DE", IP: "203.0.113.7",
		RevokeURL: "https://app.example.com/.auth/revoke?token=abc.def", SessionsURL: "https://app.example.com/.auth/sessions",
	})
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "Sign-in to your account from a new device" {
		t.Errorf("subject %q: the more telling event should name it", m.Subject)
	}
	for _, want := range []string{
		"Hello Ada,", "Someone signed in to your account on a device or browser you haven't used recently, while you were already signed in somewhere else.",
		"Sunday, 29 November 2026 at 10:42 UTC", "iPhone", "Chrome", "iOS", "Berlin, DE", "203.0.113.7",
		"This wasn't me", "https://app.example.com/.auth/revoke?token=abc.def", "https://app.example.com/.auth/sessions",
	} {
		if !strings.Contains(m.Text, want) {
			t.Errorf("text part lacks %q:\n%s", want, m.Text)
		}
		if !strings.Contains(m.HTML, want) && !strings.Contains(m.HTML, strings.ReplaceAll(want, "'", "&#39;")) {
			t.Errorf("HTML part lacks %q:\n%s", want, m.HTML)
		}
	}
}

func TestComposeEscapesAndCleansUserText(t *testing.T) {
	m, err := Compose(Notice{
		Name: "Eve\r\nBcc: victim@example.com", Events: []string{"new_login"}, At: at,
		Device: "<img src=x onerror=alert(1)>", Browser: "<b>x</b>",
		RevokeURL: "javascript:alert(1)", SessionsURL: "https://x.example/.auth/sessions\r\nX: y",
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(m.HTML, "<img") || strings.Contains(m.HTML, "<b>x") || !strings.Contains(m.HTML, "&lt;img src=x onerror=alert(1)&gt;") {
		t.Errorf("device not escaped in HTML:\n%s", m.HTML)
	}
	if strings.Contains(m.Text, "\nBcc:") || strings.Contains(m.HTML, "\nBcc:") || strings.Contains(m.Text, "\r") {
		t.Errorf("a CR/LF in the name started a line:\n%s", m.Text)
	}
	if !strings.Contains(m.Text, "Hello EveBcc: victim@example.com,") {
		t.Errorf("the name should stay, without its line break:\n%s", m.Text)
	}
	if strings.Contains(m.Text, "javascript:") || strings.Contains(m.HTML, "javascript:") || strings.Contains(m.Text, "X: y") {
		t.Errorf("a bad link was kept:\n%s", m.Text)
	}
}

func TestComposeRefusesOtherEvents(t *testing.T) {
	for _, events := range [][]string{nil, {"revoke"}, {"ip_change"}} {
		if _, err := Compose(Notice{Events: events, At: at}); err == nil {
			t.Errorf("a mail for %q", events)
		}
	}
	m, err := Compose(Notice{Events: []string{"new_login", "impossible_travel"}, At: at})
	if err != nil || m.Subject != "Unusual sign-in activity on your account" {
		t.Errorf("subject %q, %v", m.Subject, err)
	}
	if !strings.Contains(m.Text, "Place:    unknown") {
		t.Errorf("an unknown place should say so:\n%s", m.Text)
	}
}

func TestValidAddress(t *testing.T) {
	for s, want := range map[string]bool{
		"ada@example.com": true, "": false, "ada": false, "Ada <ada@example.com>": false,
		"ada@example.com\r\nBcc: x@y.z": false, "a@b.c, d@e.f": false,
	} {
		if ValidAddress(s) != want {
			t.Errorf("ValidAddress(%q) = %v", s, !want)
		}
	}
}

func TestServerCheck(t *testing.T) {
	ok := Server{Addr: "smtp.example.com:587", From: "Sessions <no-reply@example.com>"}
	if err := ok.Check(); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]Server{
		"no port":       {Addr: "smtp.example.com", From: "a@b.c"},
		"bad port":      {Addr: "smtp.example.com:70000", From: "a@b.c"},
		"no from":       {Addr: "smtp.example.com:587"},
		"bad from":      {Addr: "smtp.example.com:587", From: "nobody"},
		"bad tls":       {Addr: "smtp.example.com:587", From: "a@b.c", TLS: "maybe"},
		"user, no pass": {Addr: "smtp.example.com:587", From: "a@b.c", Username: "u"},
	} {
		if s.Check() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// The message as it goes on the wire: a CR/LF in the name starts no
// header, the one recipient is the user, the parts are text and HTML.
func TestMessageHeadersCannotBeInjected(t *testing.T) {
	srv := Server{Addr: "127.0.0.1:25", From: "Sessions <no-reply@example.com>"}
	msg, err := srv.message(Notice{
		To: "eve@example.com", Name: "Eve\r\nBcc: victim@example.com\r\nX-Injected: yes",
		Events: []string{"new_login"}, At: at, Device: "<img src=x onerror=alert(1)>",
	})
	if err != nil {
		t.Fatal(err)
	}
	var wire bytes.Buffer
	if _, err := msg.WriteTo(&wire); err != nil {
		t.Fatal(err)
	}
	parsed, err := mail.ReadMessage(&wire)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"Bcc", "X-Injected"} {
		if v := parsed.Header.Get(h); v != "" {
			t.Errorf("injected header %s: %q", h, v)
		}
	}
	to, err := parsed.Header.AddressList("To")
	if err != nil || len(to) != 1 || to[0].Address != "eve@example.com" {
		t.Errorf("To %v (%v)", to, err)
	}
	if ct := parsed.Header.Get("Content-Type"); !strings.HasPrefix(ct, "multipart/alternative") {
		t.Errorf("Content-Type %q", ct)
	}
	if _, err := srv.message(Notice{To: "a@b.c\r\nBcc: x@y.z", Events: []string{"new_login"}, At: at}); err != ErrNoAddress {
		t.Errorf("a recipient with CR/LF: %v", err)
	}
}

// token_created (SPEC 7, 12) is mailed with its own words: what a token is
// and what the link does.
func TestComposeTokenCreated(t *testing.T) {
	m, err := Compose(Notice{Events: []string{"token_created"}, At: at, Device: "Mac", Browser: "Safari", OS: "macOS",
		RevokeURL: "https://app.example.com/.auth/revoke?token=x"})
	if err != nil || m.Subject != "New access token for your account" ||
		!strings.Contains(m.Text, "the link below revokes it and signs that session out") || strings.Contains(m.Text, "signed in to your account") || !strings.Contains(m.Text, "Safari") {
		t.Fatalf("%v\n%s\n%s", err, m.Subject, m.Text)
	}
}

// However many reasons a sign-in has, the mail says them in one sentence,
// as a person would write it (issue 29: they stacked as separate
// sentences, "Your account was signed in to from a device…").
func TestComposeReasonsMakeOneSentence(t *testing.T) {
	for _, tc := range []struct {
		events []string
		want   string
	}{
		{[]string{"new_login"}, "Someone signed in to your account while you were already signed in somewhere else."},
		{[]string{"new_device"}, "Someone signed in to your account on a device or browser you haven't used recently."},
		{[]string{"new_login", "new_country"}, "Someone signed in to your account from a country you haven't signed in from recently, while you were already signed in somewhere else."},
		{[]string{"new_device", "new_country"}, "Someone signed in to your account from a country you haven't signed in from recently and on a device or browser you haven't used recently."},
		{[]string{"new_login", "new_device", "new_country", "impossible_travel"}, "Someone signed in to your account " +
			"from a place too far from where your account was last used for anyone to have travelled there in between, " +
			"from a country you haven't signed in from recently and on a device or browser you haven't used recently, " +
			"while you were already signed in somewhere else."},
	} {
		m, err := Compose(Notice{Name: "Ada", Events: tc.events, At: at})
		if err != nil {
			t.Fatal(err)
		}
		_, body, _ := strings.Cut(m.Text, "Hello Ada,\n\n")
		first, _, _ := strings.Cut(body, "\n")
		if first != tc.want {
			t.Errorf("%v:\n got %q\nwant %q", tc.events, first, tc.want)
		}
		if strings.Count(m.Text, "Someone") != 1 || strings.Count(m.HTML, "Someone") != 1 {
			t.Errorf("%v: the reasons are not one sentence:\n%s", tc.events, m.Text)
		}
	}
}
