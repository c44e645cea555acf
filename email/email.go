// Package email composes and sends the gateway's security notices to a
// user's own address: a multipart text and HTML message from templates
// embedded in the binary, sent with go-mail. It knows nothing of Caddy or
// the session store, so it is tested on its own.
package email

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"embed"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"net"
	"net/mail"
	"slices"
	"strconv"
	"strings"
	texttemplate "text/template"
	"time"
	"unicode"

	gomail "github.com/wneessen/go-mail"
)

// TLS modes of a mail server.
const (
	// STARTTLS is mandatory: a server that does not offer it gets no mail.
	TLSStartTLS = "starttls"
	// Implicit TLS from the first byte, as on port 465.
	TLSImplicit = "implicit"
	// None sends in clear; only when configured so.
	TLSNone = "none"
)

// Events a mail is sent for (SPEC section 14), most alarming first: the
// subject names the first of a notice's events in this order.
var Events = []string{"impossible_travel", "new_country", "new_device", "new_login", "token_created"}

// AccountEvents are the changes to an account's sign-in methods (SPEC
// 15): each is mailed, on its own, whenever mails are on.
var AccountEvents = []string{"password_changed", "password_reset", "totp_added", "totp_removed",
	"passkey_added", "passkey_removed", "recovery_codes_made", "recovery_code_used"}

// ResetLink is the forgot-password mail (SPEC 15): the single-use link
// that sets a new password, in Notice.ResetURL. It is no notice of
// something done, so it offers no "This wasn't me" link.
const ResetLink = "password_reset_link"

// Notice is what one mail tells. Every field but At is text from the
// session, much of it the client's own word; Compose cleans it.
type Notice struct {
	To   string // the user's address
	Name string // the user's display name, if any

	Events      []string // of Events; one mail per sign-in, however many apply
	At          time.Time
	Device      string
	Browser     string
	OS          string
	Place       string // "Berlin, DE"; empty when unknown
	IP          string
	RevokeURL   string // the "This wasn't me" link; empty when no link can be made
	SessionsURL string
	Passkey     string // passkey_added, passkey_removed: the passkey's name
	ResetURL    string // ResetLink's link
}

// Message is a composed notice.
type Message struct {
	Subject string
	Text    string
	HTML    string
}

//go:embed templates
var templateFiles embed.FS

var (
	textTemplate = texttemplate.Must(texttemplate.ParseFS(templateFiles, "templates/notice.txt.tmpl"))
	htmlTemplate = htmltemplate.Must(htmltemplate.ParseFS(templateFiles, "templates/notice.html.tmpl"))
)

// What each event says: the subject it gives a mail, and for a sign-in
// the part of the one sentence that says what was unusual about it.
var wording = map[string]struct{ subject, why string }{
	"impossible_travel": {"Unusual sign-in activity on your account",
		"from a place too far from where your account was last used for anyone to have travelled there in between"},
	"new_country": {"Sign-in to your account from a new country",
		"from a country you haven't signed in from recently"},
	"new_device": {"Sign-in to your account from a new device",
		"on a device or browser you haven't used recently"},
	"new_login": {"New sign-in to your account",
		"while you were already signed in somewhere else"},
	"token_created": {"New access token for your account", ""},
	// Account changes: why is the mail's paragraph.
	"password_changed": {"Your password was changed",
		"The password of your account was changed from the session below. Your other sessions were signed out."},
	"totp_added": {"An authenticator app was added to your account",
		"An authenticator app was added to your account from the session below: signing in now asks for its code."},
	"totp_removed": {"The authenticator app was removed from your account",
		"The authenticator app was removed from your account from the session below: signing in no longer asks for its code."},
	"recovery_codes_made": {"New recovery codes for your account",
		"New recovery codes were made for your account from the session below. The old ones no longer work."},
	"recovery_code_used": {"A recovery code was used to sign in to your account",
		"One of your recovery codes was used to sign in to your account, in place of a code from your authenticator app. It works only once."},
	"password_reset": {"Your password was reset",
		"The password of your account was reset with a link mailed to this address. Every session of your account was signed out."},
	"passkey_added": {"A passkey was added to your account",
		"A passkey was added to your account from the session below: it can now sign you in."},
	"passkey_removed": {"A passkey was removed from your account",
		"A passkey was removed from your account from the session below: it no longer signs you in."},
	ResetLink: {"Reset your password",
		"Someone asked to reset the password of your account. To choose a new password, open the link below within 30 minutes; it works once. " +
			"The second step of your sign-in (authenticator app or passkey), if you have one, is still asked."},
}

// tokenCreated is the token_created mail's paragraph: a token is no
// sign-in, so it is not one of the sentence's reasons.
const tokenCreated = "Someone created an access token for your account, from the session below. " +
	"It lets scripts act as you until it expires or is revoked; the link below revokes it and signs that session out."

// signInSentence writes a sign-in's reasons, in the order of Events, as
// one sentence, as a person would: "Someone signed in to your account on
// a device or browser you haven't used recently, while you were already
// signed in somewhere else." new_login, a "while" clause, comes last.
func signInSentence(events []string) string {
	var whys []string
	for _, e := range events {
		if e != "new_login" {
			whys = append(whys, wording[e].why)
		}
	}
	s := "Someone signed in to your account"
	switch len(whys) {
	case 0:
	case 1:
		s += " " + whys[0]
	default:
		s += " " + strings.Join(whys[:len(whys)-1], ", ") + " and " + whys[len(whys)-1]
	}
	if slices.Contains(events, "new_login") {
		if len(whys) > 0 {
			s += ","
		}
		s += " " + wording["new_login"].why
	}
	return s + "."
}

// templateData is what the templates see: clean text only.
type templateData struct {
	Subject     string
	Name        string
	Lines       []string
	When        string
	Device      string
	Browser     string
	OS          string
	Place       string
	IP          string
	RevokeURL   string
	SessionsURL string
	Passkey     string
	ResetURL    string
}

// Compose renders n. User-controlled text loses its control characters
// (no CR/LF can start a line or a header) and the HTML template escapes it.
func Compose(n Notice) (Message, error) {
	d := templateData{
		Name: clean(n.Name), When: n.At.UTC().Format("Monday, 2 January 2006 at 15:04 UTC"),
		Device: orUnknown(clean(n.Device)), Browser: orUnknown(clean(n.Browser)), OS: orUnknown(clean(n.OS)),
		Place: orUnknown(clean(n.Place)), IP: orUnknown(clean(n.IP)),
		RevokeURL: cleanURL(n.RevokeURL), SessionsURL: cleanURL(n.SessionsURL), Passkey: clean(n.Passkey),
	}
	if slices.Contains(n.Events, ResetLink) {
		// The link alone: no other event shares its mail, and without a
		// link it says nothing.
		d.ResetURL = cleanURL(n.ResetURL)
		if d.ResetURL == "" {
			return Message{}, fmt.Errorf("%w: %s without a link", ErrNothingToSay, ResetLink)
		}
		d.Subject, d.Lines, d.RevokeURL, d.SessionsURL = wording[ResetLink].subject, []string{wording[ResetLink].why}, "", ""
		return render(d)
	}
	var signIn []string
	for _, e := range slices.Concat(Events, AccountEvents) {
		if !slices.Contains(n.Events, e) {
			continue
		}
		if d.Subject == "" {
			d.Subject = wording[e].subject
		}
		switch {
		case e == "token_created":
			d.Lines = append(d.Lines, tokenCreated)
		case slices.Contains(AccountEvents, e):
			d.Lines = append(d.Lines, wording[e].why)
		default:
			signIn = append(signIn, e)
		}
	}
	if len(signIn) > 0 {
		d.Lines = append([]string{signInSentence(signIn)}, d.Lines...)
	}
	if d.Subject == "" {
		return Message{}, fmt.Errorf("%w: %q", ErrNothingToSay, n.Events)
	}
	return render(d)
}

// render writes d's text and HTML parts.
func render(d templateData) (Message, error) {
	var text, html bytes.Buffer
	if err := textTemplate.Execute(&text, d); err != nil {
		return Message{}, fmt.Errorf("rendering the text part: %w", err)
	}
	if err := htmlTemplate.Execute(&html, d); err != nil {
		return Message{}, fmt.Errorf("rendering the HTML part: %w", err)
	}
	return Message{Subject: d.Subject, Text: text.String(), HTML: html.String()}, nil
}

// clean drops control characters (CR and LF among them) and trims.
func clean(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			if r == '\t' {
				return ' '
			}
			return -1
		}
		return r
	}, s)
	return strings.TrimSpace(s)
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// cleanURL keeps only an http(s) link without spaces or controls, so that
// a link in the text part is one link.
func cleanURL(s string) string {
	if (!strings.HasPrefix(s, "https://") && !strings.HasPrefix(s, "http://")) || strings.IndexFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0 {
		return ""
	}
	return s
}

// ValidAddress reports whether s is one bare address a mail can go to.
func ValidAddress(s string) bool {
	if s == "" || clean(s) != s || len(s) > 254 {
		return false
	}
	a, err := mail.ParseAddress(s)
	return err == nil && a.Address == s && a.Name == ""
}

// Server is an SMTP server to send through.
type Server struct {
	Addr     string // host:port
	Username string
	Password string
	From     string // an address, or "Name <address>"
	TLS      string // TLSStartTLS (default), TLSImplicit or TLSNone
	RootCAs  *x509.CertPool
	Timeout  time.Duration // per connection step; default 10s
}

// Check reports what in s can never work.
func (s Server) Check() error {
	host, port, err := net.SplitHostPort(s.Addr)
	if err != nil || host == "" {
		return fmt.Errorf("smtp %q must be host:port", s.Addr)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("smtp %q: bad port", s.Addr)
	}
	if s.From == "" {
		return errors.New("from is required")
	}
	if a, err := mail.ParseAddress(s.From); err != nil || clean(s.From) != s.From {
		return fmt.Errorf("from %q is not a mail address", s.From)
	} else if a.Address == "" {
		return fmt.Errorf("from %q has no address", s.From)
	}
	switch s.TLS {
	case "", TLSStartTLS, TLSImplicit, TLSNone:
	default:
		return fmt.Errorf("tls %q must be one of starttls, implicit, none", s.TLS)
	}
	if (s.Username == "") != (s.Password == "") {
		return errors.New("username and password go together")
	}
	return nil
}

// Errors that retrying cannot mend, and the refusal to send in clear.
var (
	ErrNoAddress    = errors.New("no valid recipient address")
	ErrNothingToSay = errors.New("no mail for these events")
	ErrNoSTARTTLS   = errors.New("the mail server does not offer STARTTLS")
)

// Send composes n and sends it through s, within ctx.
func (s Server) Send(ctx context.Context, n Notice) error {
	msg, err := s.message(n)
	if err != nil {
		return err
	}
	client, err := s.client(ctx)
	if err != nil {
		return err
	}
	if err := client.DialAndSendWithContext(ctx, msg); err != nil {
		return s.failed("sending mail through", err)
	}
	return nil
}

// Probe goes as far with the server as a mail does before its sender:
// the connection, the greeting and EHLO, STARTTLS or implicit TLS as
// configured, and the login when s has credentials; then it says QUIT.
// It sends no mail.
func (s Server) Probe(ctx context.Context) error {
	client, err := s.client(ctx)
	if err != nil {
		return err
	}
	if err := client.DialWithContext(ctx); err != nil {
		return s.failed("connecting to", err)
	}
	if err := client.Close(); err != nil {
		return s.failed("saying QUIT to", err)
	}
	return nil
}

// failed names the server in err, and a server without STARTTLS (which
// go-mail says only in words) as ErrNoSTARTTLS.
func (s Server) failed(doing string, err error) error {
	if strings.Contains(err.Error(), "does not support STARTTLS") {
		return fmt.Errorf("%w: %s", ErrNoSTARTTLS, s.Addr)
	}
	return fmt.Errorf("%s %s: %w", doing, s.Addr, err)
}

// message is n as a multipart/alternative mail from s.From.
func (s Server) message(n Notice) (*gomail.Msg, error) {
	if !ValidAddress(n.To) {
		return nil, ErrNoAddress
	}
	m, err := Compose(n)
	if err != nil {
		return nil, err
	}
	msg := gomail.NewMsg()
	if err := msg.From(s.From); err != nil {
		return nil, fmt.Errorf("from: %w", err)
	}
	if err := msg.AddToFormat(clean(n.Name), n.To); err != nil {
		return nil, fmt.Errorf("to: %w", err)
	}
	msg.Subject(m.Subject)
	msg.SetDate()
	msg.SetMessageID()
	msg.SetGenHeader(gomail.Header("Auto-Submitted"), "auto-generated")
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	return msg, nil
}

func (s Server) client(ctx context.Context) (*gomail.Client, error) {
	host, portText, err := net.SplitHostPort(s.Addr)
	if err != nil {
		return nil, fmt.Errorf("smtp %q must be host:port", s.Addr)
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return nil, fmt.Errorf("smtp %q: bad port", s.Addr)
	}
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	opts := []gomail.Option{
		gomail.WithPort(port), gomail.WithTimeout(timeout),
		gomail.WithTLSConfig(&tls.Config{ServerName: host, RootCAs: s.RootCAs, MinVersion: tls.VersionTLS12}),
	}
	if s.TLS != TLSImplicit {
		// The connection ends with ctx, so that a hanging server holds
		// up no shutdown (go-mail's own deadlines are per step). Implicit
		// TLS keeps go-mail's dialer: with another, it would take the
		// connection for unencrypted and refuse PLAIN auth.
		opts = append(opts, gomail.WithDialContextFunc(func(dctx context.Context, network, addr string) (net.Conn, error) {
			var d net.Dialer
			conn, err := d.DialContext(dctx, network, addr)
			if err != nil {
				return nil, err
			}
			context.AfterFunc(ctx, func() { conn.Close() })
			return conn, nil
		}))
	}
	switch s.TLS {
	case TLSImplicit:
		opts = append(opts, gomail.WithSSL())
	case TLSNone:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	default:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	}
	if s.Username != "" {
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover),
			gomail.WithUsername(s.Username), gomail.WithPassword(s.Password))
	}
	return gomail.NewClient(host, opts...)
}
