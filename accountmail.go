package sessionauth

import (
	"net/http"

	"github.com/sessionauth/caddy-sessionauth/session"
)

// Account changes made outside the account page, mailed as its own are.

// mailPasskey mails the account's address that a passkey was added or
// removed (SPEC 15), as the account page's changes are mailed: the
// session that did it, the passkey's name, and the "Not you?" link.
func (p *passkeySignIn) mailPasskey(r *http.Request, cur *session.Session, rec *session.Account, event, name string) {
	to := ""
	if who, ok := p.person(rec); ok {
		to = who.email // a stored account's, or the Caddyfile's
	}
	p.h.notifier.accountChanged(r, event, cur, to, p.h.now(), func(n *session.Notice) { n.Passkey = name })
}

// mailOnLanding is who and land, a sign-in's, with the mail of event
// (to the account's address, about the session it signed in) sent as
// it lands: the session is minted between the two.
func (l *localSignIn) mailOnLanding(r *http.Request, who signedIn, event, to string, land func() error) (signedIn, func() error) {
	var s *session.Session
	prepare := who.prepare
	who.prepare = func(m *session.Session, reason string) error {
		s = m
		if prepare != nil {
			return prepare(m, reason)
		}
		return nil
	}
	return who, func() error {
		if s != nil {
			l.notifier().accountChanged(r, event, s, to, l.live.now())
		}
		return land()
	}
}
