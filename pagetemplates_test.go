package sessionauth

import (
	"bytes"
	"flag"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var updatePages = flag.Bool("update-pages", false, "rewrite testdata/pages from the templates")

// The pages render byte for byte as the golden files in testdata/pages
// (rewritten with -update-pages after a deliberate change, and reviewed:
// the last one moved every page onto templates/layout.html). Each page
// escapes what it shows.
func TestPagesRenderAsBefore(t *testing.T) {
	cards := []sessionCard{
		{ID: "cur", Device: "Mac", Kind: "desktop", Browser: "Safari", OS: "macOS", Location: "Berlin, DE", IP: "192.0.2.1",
			SignedIn: "2 hours ago", SignedInAt: "Mon, 01 Jun 2026 10:00:00 UTC", LastActive: "just now", LastAt: "Mon, 01 Jun 2026 12:00:00 UTC", Current: true},
		{ID: "phone", Device: "iPhone", Kind: "mobile", Browser: "Safari", OS: "iOS", Location: "Unknown location", IP: "198.51.100.7",
			SignedIn: "3 days ago", SignedInAt: "Fri, 29 May 2026 09:00:00 UTC", LastActive: "1 hour ago", LastAt: "Mon, 01 Jun 2026 11:00:00 UTC", Site: "wiki.example.com"},
	}
	ended := sessionCard{ID: "tab", Device: "iPad <b>", Kind: "tablet", Browser: "Chrome", OS: "iPadOS", Location: "DE", IP: "unknown",
		SignedIn: "5 days ago", Ended: "1 day ago", EndReason: "Signed out remotely", Site: "app.example.com:8443"}
	pages := map[string]func(*bytes.Buffer) error{
		"sessions.html": func(b *bytes.Buffer) error {
			return renderPage(b, pageSessions, sessionsPageData{Name: "Alice & Bob", Endpoints: "/.sessions", CSRF: "tok\"en", Site: "app.example.com",
				Active: cards, Ended: []sessionCard{ended}, Others: 1})
		},
		"sessions-tokens.html": func(b *bytes.Buffer) error {
			withTokens := append([]sessionCard(nil), cards...)
			withTokens[0].Tokens = []string{"laptop script"} // the current session's: its sign-out keeps them
			withTokens[1].Tokens = []string{"ci <deploy>", "backup"}
			return renderPage(b, pageSessions, sessionsPageData{Name: "alice", Endpoints: "/.sessions", CSRF: "t", Active: withTokens, Others: 1,
				OthersTokens: []string{"ci <deploy>", "backup", "nightly"}, TokensOn: true, MaxLifetime: "90 days", StaleFor: "10 minutes",
				Tokens: []tokenCard{{ID: "tok", Name: "ci <deploy>", Created: "1 hour ago", LastUsed: "never", LastIP: "192.0.2.1", Expires: "1 Sep 2026", ExpiresAt: "Tue, 01 Sep 2026 10:00:00 UTC"}}})
		},
		"link-confirm-token.html": func(b *bytes.Buffer) error {
			return renderPage(b, pageLink, linkData{Title: "Was this access token yours?", Site: "app.example.com", Account: "alice@example.com", Home: "/", Device: "iPhone", Browser: "Safari", OS: "iOS",
				IP: "198.51.100.7", Location: "Paris, FR", When: "3 minutes ago", Confirm: true, Tokens: []string{"ci <deploy>", "backup"},
				Button: "Revoke the token and sign out that session"})
		},
		"sessions-alone.html": func(b *bytes.Buffer) error {
			return renderPage(b, pageSessions, sessionsPageData{Name: "alice", Endpoints: "/.sessions", CSRF: "t", Active: cards[:1]})
		},
		"link-confirm.html": func(b *bytes.Buffer) error {
			return renderPage(b, pageLink, linkData{Title: "Was this you?", Site: "app.example.com", Account: "alice@example.com", Home: "/", Device: "iPhone", Browser: "Safari", OS: "iOS",
				IP: "198.51.100.7", Location: "Paris, FR", When: "3 days ago", Confirm: true})
		},
		"stepup.html": func(b *bytes.Buffer) error {
			return renderPage(b, pageStepUp, signInPage{Host: "app.example.com", Action: "/.auth/sign-in", Next: "/admin?x=1&y=<2>", CSRF: "tok\"en", StepUp: true,
				Who: "Alice <A> & Co", User: "alice", Accounts: true, SwitchURL: "/.auth/sign-in?next=%2Fadmin%3Fx%3D1", Error: "Wrong user name or password."})
		},
		"stepup-oidc.html": func(b *bytes.Buffer) error {
			return renderPage(b, pageStepUp, signInPage{Host: "app.example.com", Action: "/.auth/sign-in", Next: "/admin", CSRF: "t", StepUp: true, Who: "alice@example.com",
				Providers: []providerButton{{Label: "Corp <SSO>", URL: "/.auth/sign-in/corp?step_up=1&next=%2Fadmin"}}, SwitchURL: "/.auth/sign-in?next=%2Fadmin"})
		},
		"passkeys.html": func(b *bytes.Buffer) error {
			return renderPage(b, pagePasskeys, passkeysPageData{Name: "Alice & Bob", Endpoints: "/.auth", CSRF: "tok\"en", Site: "app.example.com", Stale: true,
				Passkeys: []passkeyCard{{ID: "AbC-_1", Name: "Chrome on <macOS>", Added: "2 days ago", AddedAt: "Mon, 01 Jun 2026 10:00:00 UTC", LastUsed: "1 hour ago", Warning: true}}})
		},
		"passkeys-none.html": func(b *bytes.Buffer) error {
			return renderPage(b, pagePasskeys, passkeysPageData{Name: "alice", Endpoints: "/.auth", CSRF: "t", Site: "app.example.com"})
		},
		"signin-passkey.html": func(b *bytes.Buffer) error {
			return renderPage(b, pageSignIn, signInPage{Host: "app.example.com", Action: "/.auth/sign-in", Next: "/admin?x=1&y=<2>", CSRF: "tok\"en", Accounts: true,
				Passkeys: true, Endpoints: "/.auth"})
		},
		"stepup-passkey.html": func(b *bytes.Buffer) error {
			return renderPage(b, pageStepUp, signInPage{Host: "app.example.com", Action: "/.auth/sign-in", Next: "/admin", CSRF: "t", StepUp: true,
				Who: "alice", User: "alice", Accounts: true, Passkeys: true, Endpoints: "/.auth", SwitchURL: "/.auth/sign-in?next=%2Fadmin"})
		},
		"stepup-code.html": func(b *bytes.Buffer) error {
			return renderPage(b, pageStepUp, signInPage{Host: "app.example.com", Action: "/.auth/sign-in", Next: "/admin", CSRF: "t", StepUp: true, Who: "bob", User: "bob",
				Accounts: true, Pending: "p3nd1ng", SwitchURL: "/.auth/sign-in?next=%2Fadmin"})
		},
		"link-confirm-password.html": func(b *bytes.Buffer) error {
			return renderPage(b, pageLink, linkData{Title: "Was this you?", Site: "app.example.com", Account: "alice@example.com", Home: "/", Device: "iPhone", Browser: "Safari", OS: "iOS",
				IP: "198.51.100.7", Location: "Paris, FR", When: "3 days ago", Confirm: true, Password: "https://app.example.com/account/password?x=1&y=2"})
		},
		"link-signed-out-password.html": func(b *bytes.Buffer) error {
			return renderPage(b, pageLink, linkData{Title: "Signed out", Text: "That session is signed out.", Site: "app.example.com", Account: "alice@example.com", Home: "/",
				Password: "/account/password"})
		},
		"signin.html": func(b *bytes.Buffer) error {
			return renderPage(b, pageSignIn, signInPage{Host: "app.example.com", Action: "/.auth/sign-in", Next: "/a?b=<c>", CSRF: "t",
				Notice: "You were signed out from another device.", Accounts: true, Providers: []providerButton{{Label: "Corp & Co", URL: "/.auth/sign-in/corp?next=%2Fa"}}})
		},
		"signin-code.html": func(b *bytes.Buffer) error {
			return renderPage(b, pageSignIn, signInPage{Host: "app.example.com", Action: "/.auth/sign-in", Next: "/", CSRF: "t",
				Error: "Wrong code. Enter the 6 digits your authenticator app shows now.", Pending: "p", User: "bob"})
		},
		"logout.html": func(b *bytes.Buffer) error {
			return renderPage(b, pageLogout, logoutData{Site: "app.example.com", Endpoints: "/.auth", Next: "/a?b=<c>&d=1"})
		},
		"problem.html": func(b *bytes.Buffer) error {
			p := problemTooManySessions
			return renderPage(b, pageLink, linkData{Title: p.title, Text: p.text})
		},
		"problem-way.html": func(b *bytes.Buffer) error {
			p := problemRateLimited
			return renderPage(b, pageLink, linkData{Title: p.title, Text: p.text, Way: &wayOn{"/login?a=1&b=<2>", "Back to the form"}})
		},
		"signin-typed.html": func(b *bytes.Buffer) error {
			return renderPage(b, pageSignIn, signInPage{Host: "app.example.com", Action: "/.auth/sign-in", Next: "/", CSRF: "t",
				Error: "Wrong user name or password.", Accounts: true, Typed: "al\"ice <x>"})
		},
		"invite.html": func(b *bytes.Buffer) error {
			return renderPage(b, pageInvite, invitePage{Host: "app.example.com", Action: "/.auth/invite", CSRF: "t", Token: "to\"ken", User: "dana <d>",
				Error: "The password needs at least 8 characters."})
		},
		"invite-passkey.html": func(b *bytes.Buffer) error {
			return renderPage(b, pageInvite, invitePage{Host: "app.example.com", Action: "/.auth/invite", CSRF: "t", Token: "to\"ken", User: "dana",
				Passkeys: true, Endpoints: "/.auth"})
		},
		"signin-totp.html": func(b *bytes.Buffer) error {
			return renderPage(b, pageSignInTOTP, enrolPage{Host: "app.example.com", Action: "/.auth/sign-in", CSRF: "t", Next: "/a?b=<c>", Enrol: "e",
				User: "jo <j>", Secret: "JBSWY3DPEHPK3PXP", Error: "Wrong code.", QR: `<svg viewBox="0 0 1 1"></svg>`})
		},
		"forbidden.html": func(b *bytes.Buffer) error {
			return renderPage(b, pageForbidden, forbiddenData{Who: "Alice <A>", UserID: "alice", Endpoints: "/.auth", Next: "/admin?x=<1>"})
		},
		"forbidden-max-age.html": func(b *bytes.Buffer) error {
			return renderPage(b, pageForbidden, forbiddenData{Who: "alice", UserID: "alice", Endpoints: "/.auth", Next: "/admin",
				ruleWants: ruleWants{Rule: ruleMaxAge, MaxAge: "10 minutes", SignedIn: "2 hours ago"}})
		},
		"forbidden-no-risk.html": func(b *bytes.Buffer) error {
			return renderPage(b, pageForbidden, forbiddenData{Who: "Alice", UserID: "alice", Endpoints: "/.auth", Next: "/admin",
				ruleWants: ruleWants{Rule: ruleNoRisk, Risks: []string{riskWords["new-device"], riskWords["ip-changed"]}}})
		},
		"token.html": func(b *bytes.Buffer) error {
			return renderPage(b, pageToken, tokenPageData{tokenResponse: tokenResponse{Name: "ci <deploy>", Token: "sat_abc&def"},
				Endpoints: "/.auth", Expires: "Tue, 01 Sep 2026 10:00:00 UTC"})
		},
		"account.html": func(b *bytes.Buffer) error {
			return renderPage(b, pageAccount, accountPageData{Site: "app.example.com", Endpoints: "/.auth", CSRF: "tok\"en", Name: "Alice <A>",
				Account: accountJSON{UserID: "alice", Password: true, RecoveryCodes: 9}, PasswordOwn: true, TOTPOwn: true, TOTPRemovable: true,
				RecoveryMade: true, Notice: "Your password was changed. Your other sessions were signed out."})
		},
		"account-operator.html": func(b *bytes.Buffer) error {
			return renderPage(b, pageAccount, accountPageData{Site: "app.example.com", Endpoints: "/.auth", CSRF: "t", Name: "bob",
				Account: accountJSON{UserID: "bob", Password: true, TOTP: true}, StaleFor: "10 minutes", Error: "Wrong <code>."})
		},
		"account-totp.html": func(b *bytes.Buffer) error {
			return renderPage(b, pageAccountTOTP, accountTOTPData{Site: "app.example.com", Endpoints: "/.auth", CSRF: "t", Secret: "JBSWY3DPEHPK3PXP",
				URI: "otpauth://totp/app.example.com:alice?issuer=app.example.com&secret=JBSWY3DPEHPK3PXP", QR: `<svg viewBox="0 0 1 1"></svg>`, Link: otpauthLink("otpauth://totp/app.example.com:alice?issuer=app.example.com&secret=JBSWY3DPEHPK3PXP"),
				Error: "Wrong code."})
		},
		"account-codes.html": func(b *bytes.Buffer) error {
			return renderPage(b, pageAccountCodes, accountCodesData{Site: "app.example.com", Endpoints: "/.auth", Codes: []string{"k3x9q-7mw2p", "<b>"}})
		},
		"signed-in.html": func(b *bytes.Buffer) error {
			return renderPage(b, pageSignedIn, "/a?b=<c>&d=1")
		},
		"signin-forgot.html": func(b *bytes.Buffer) error {
			return renderPage(b, pageSignIn, signInPage{Host: "app.example.com", Action: "/.auth/sign-in", Next: "/", CSRF: "t",
				Accounts: true, Forgot: "/.auth/forgot"})
		},
		"forgot.html": func(b *bytes.Buffer) error {
			return renderPage(b, pageForgot, forgotPage{Host: "app.example.com", Action: "/.auth/forgot", SignIn: "/.auth/sign-in", CSRF: "t\"", Error: forgotNoName})
		},
		"forgot-sent.html": func(b *bytes.Buffer) error {
			return renderPage(b, pageForgot, forgotPage{Host: "app.example.com", Action: "/.auth/forgot", SignIn: "/.auth/sign-in", CSRF: "t", Sent: forgotSent})
		},
		"forgot-link.html": func(b *bytes.Buffer) error {
			return renderPage(b, pageForgot, forgotPage{Host: "app.example.com", Action: "/.auth/forgot", SignIn: "/.auth/sign-in", CSRF: "t",
				Token: "to\"ken", User: "dana <d>", Error: "The two passwords differ. Type the same password twice."})
		},
		"forgot-done.html": func(b *bytes.Buffer) error {
			return renderPage(b, pageForgot, forgotPage{Host: "app.example.com", Action: "/.auth/forgot", SignIn: "/.auth/sign-in", CSRF: "t", Done: forgotDone})
		},
	}
	for file := range pageTemplates { // every page has a golden: file.html or file-case.html
		if !slices.ContainsFunc(slices.Collect(maps.Keys(pages)), func(name string) bool {
			return name == file || strings.HasPrefix(name, strings.TrimSuffix(file, ".html")+"-")
		}) {
			t.Errorf("templates/%s has no golden page here", file)
		}
	}
	for name, render := range pages {
		var b bytes.Buffer
		if err := render(&b); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		// Every page is drawn in the layout: one style block, which
		// gives links the product's colour, and the phone's viewport.
		if html := b.String(); strings.Count(html, "<style>") != 1 || !strings.Contains(html, "a{color:var(--accent)}") ||
			!strings.Contains(html, `<meta name="viewport" content="width=device-width, initial-scale=1">`) {
			t.Errorf("%s is not drawn in the layout:\n%s", name, html)
		}
		golden := filepath.Join("testdata", "pages", name)
		if *updatePages {
			if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b.Bytes(), want) {
			t.Errorf("%s renders differently from %s:\n%s", name, golden, b.String())
		}
	}
}
