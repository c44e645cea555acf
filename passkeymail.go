package sessionauth

import (
	"net/http"

	"github.com/sessionauth/caddy-sessionauth/session"
)

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
