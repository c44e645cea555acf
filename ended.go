package sessionauth

import (
	"context"
	"time"

	"github.com/sessionauth/caddy-sessionauth/session"
)

// ending is how sessions ended: why, by whom, when, and whether their
// user is told.
type ending struct {
	reason, actor string
	at            time.Time
	// quiet: the user ended it themselves in this browser (sign-out, a
	// sign-in over an old session) or at their provider (back-channel
	// logout): a notice would tell them what they just did.
	quiet bool
	// ctx is the request's that ended them, for the trace of their
	// notices (notifytrace.go); nil when no request did.
	ctx context.Context
}

// sessionsEnded does what follows every end of sessions, wherever it
// was decided (sign-out, fixation, a policy, the limit, the upstream,
// the sessions page, a revoke link, the provider, the admin): the
// metric, forgetting them in every handler of this process (other
// processes hear of it over the store's revocation channel), the log
// line, and the webhook notices, queued in one store operation. Mails
// tell of sign-ins only (email.Events): an end sends none.
func (h *Handler) sessionsEnded(ended []*session.Session, e ending) {
	if len(ended) == 0 {
		return
	}
	if e.reason == session.EndLogout {
		h.metrics.logout()
	} else {
		h.metrics.revocation(e.actor, len(ended))
	}
	forgetEverywhere(h, idsOf(ended)...)
	for _, s := range ended {
		h.logEvent(session.EndEvent(s, e.at, e.reason, e.actor))
	}
	if !e.quiet {
		h.notifier.ended(e.ctx, ended, e.at)
	}
}

// sessionEnded is sessionsEnded for one session.
func (h *Handler) sessionEnded(s *session.Session, e ending) {
	h.sessionsEnded([]*session.Session{s}, e)
}

func idsOf(ss []*session.Session) []string {
	ids := make([]string, len(ss))
	for i, s := range ss {
		ids[i] = s.ID
	}
	return ids
}
