package sessionauth

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/sessionauth/caddy-sessionauth/email"
	"github.com/sessionauth/caddy-sessionauth/session"
)

// NotifyEmail mails a user on a new or unusual sign-in, at the address the
// sign-in gave (Session-Login-Email); users without one get no mail.
// Mails go through the same durable outbox as webhook notices.
type NotifyEmail struct {
	// The SMTP server, host:port.
	SMTP string `json:"smtp,omitempty"`
	// SMTP credentials, if the server wants them. {env.*} placeholders
	// are expanded in the password.
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	// The sender: an address, or "Name <address>".
	From string `json:"from,omitempty"`
	// starttls (default: the server must offer STARTTLS, or gets no
	// mail), implicit (TLS from the start, port 465) or none (in clear).
	TLS string `json:"tls,omitempty"`
	// PEM file of the certificates to trust for the server instead of
	// the system's (a private mail relay).
	TLSCA string `json:"tls_ca,omitempty"`
	// Events to mail: new_login new_device new_country impossible_travel
	// token_created (default all five). One sign-in gets one mail, naming
	// each event.
	Events []string `json:"events,omitempty"`
}

// mailTarget is the outbox target of every mail: the recipient is in the
// notice, and the running config says how to send.
const mailTarget = "email"

func (n *NotifyEmail) check() error {
	if n == nil {
		return nil
	}
	if n.SMTP == "" {
		return errors.New("notify email needs smtp <host:port>")
	}
	srv := email.Server{Addr: n.SMTP, Username: n.Username, Password: n.Password, From: n.From, TLS: n.TLS}
	if err := srv.Check(); err != nil {
		return fmt.Errorf("notify email: %w", err)
	}
	for _, e := range n.Events {
		if err := oneOf("notify email event", e, email.Events...); err != nil {
			return err
		}
	}
	return nil
}

// server is the mail server of this config, secrets expanded.
func (n *NotifyEmail) server(repl *caddy.Replacer) (*email.Server, error) {
	srv := &email.Server{
		Addr: n.SMTP, Username: repl.ReplaceAll(n.Username, ""), Password: repl.ReplaceAll(n.Password, ""),
		From: n.From, TLS: n.TLS, Timeout: deliveryTimeout,
	}
	if n.TLSCA != "" {
		pem, err := os.ReadFile(n.TLSCA)
		if err != nil {
			return nil, fmt.Errorf("notify email tls_ca: %w", err)
		}
		srv.RootCAs = x509.NewCertPool()
		if !srv.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("notify email tls_ca %s: no PEM certificate in it", n.TLSCA)
		}
	}
	return srv, nil
}

func (n *NotifyEmail) wants(event string) bool {
	events := n.Events
	if len(events) == 0 {
		events = email.Events
	}
	for _, e := range events {
		if e == event {
			return true
		}
	}
	return false
}

// mailOf queues one mail about s telling of those of events the
// config wants. r is nil for sessions minted by the admin API.
func (n *notifier) mailOf(r *http.Request, events []string, s *session.Session, at time.Time) {
	if n.mail == nil || s.Email == "" {
		return
	}
	var wanted []string
	for _, e := range events {
		if n.mail.wants(e) {
			wanted = append(wanted, e)
		}
	}
	if len(wanted) == 0 {
		return
	}
	if !email.ValidAddress(s.Email) {
		if c := n.logger.Check(zap.InfoLevel, "no mail: the session's email is not one address"); c != nil {
			c.Write(zap.String("user_id", s.UserID), zap.String("session_id", s.ID))
		}
		return
	}
	notice := session.Notice{
		Event: wanted[0], Events: wanted, At: at.UTC(), UserID: s.UserID, SessionID: s.ID,
		DeviceName: s.Device, Browser: s.Browser, OS: s.OS, IP: s.IP, Country: s.Country, City: s.City,
		Email: s.Email, Name: s.Name, // never the user agent: the client's own text, links included
	}
	base := n.baseURL
	if base == "" && r != nil {
		base = n.links.linkBase(r)
	}
	if base != "" {
		notice.RevokeURL = base + n.endpoints + "/revoke?token=" + n.links.linkToken(s)
		notice.SessionsURL = base + n.endpoints + "/sessions"
	}
	n.traceNotice(r, &notice)
	ctx := context.Background()
	if err := n.store.Enqueue(ctx, mailTarget, notice); err != nil {
		n.metrics.notification("dropped")
		n.logger.Error("queueing a notification mail", zap.Strings("events", wanted), zap.Error(err))
	}
}

// sendMail delivers one queued mail through srv.
func sendMail(ctx context.Context, srv *email.Server, n session.Notice) error {
	place := n.City
	if n.Country != "" {
		place = strings.TrimPrefix(place+", "+n.Country, ", ")
	}
	events := n.Events
	if len(events) == 0 {
		events = []string{n.Event}
	}
	return srv.Send(ctx, email.Notice{
		To: n.Email, Name: n.Name, Events: events, At: n.At,
		Device: n.DeviceName, Browser: n.Browser, OS: n.OS, Place: place, IP: n.IP,
		RevokeURL: n.RevokeURL, SessionsURL: n.SessionsURL, Passkey: n.Passkey, ResetURL: n.ResetURL,
	})
}

// parseNotifyEmail reads `notify email { … }` into h; d is on "email".
func parseNotifyEmail(d *caddyfile.Dispenser, h *Handler) error {
	if h.NotifyEmail != nil {
		return d.Errf("notify email given more than once")
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	n := &NotifyEmail{}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if seen[opt] {
			return d.Errf("notify email: %s given more than once", opt)
		}
		seen[opt] = true
		var err error
		switch opt {
		case "smtp":
			err = stringArg(d, &n.SMTP)
		case "username":
			err = stringArg(d, &n.Username)
		case "password":
			err = stringArg(d, &n.Password)
		case "from":
			err = stringArg(d, &n.From)
		case "tls":
			err = choiceArg(d, &n.TLS, email.TLSStartTLS, email.TLSImplicit, email.TLSNone)
		case "tls_ca":
			err = stringArg(d, &n.TLSCA)
		case "events":
			n.Events = d.RemainingArgs()
			if len(n.Events) == 0 {
				return d.ArgErr()
			}
			for _, e := range n.Events {
				if err := oneOf("notify email event", e, email.Events...); err != nil {
					return d.Errf("%v", err)
				}
			}
		default:
			return d.Errf("notify email: unknown subdirective %q", opt)
		}
		if err != nil {
			return err
		}
	}
	if err := n.check(); err != nil {
		return d.Errf("%v", err)
	}
	h.NotifyEmail = n
	return nil
}
