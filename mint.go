package sessionauth

import (
	"net/http"
	"time"

	"github.com/sessionauth/caddy-sessionauth/session"
)

// signedIn is who a sign-in proved and how: the hand-off, an account or
// an OIDC provider. Every way in ends in mint with one of these.
type signedIn struct {
	userID, email, name, roles string
	method                     string
	// prepare, when set, completes the session before it is stored; it
	// gets the cookie's secret (OIDC seals the refresh token under it).
	prepare func(s *session.Session, secret string) error
}

// mint is the one place sessions are born for a sign-in: login_rate per
// user, the end of the session the client came with (no fixation), the
// new session with its device and place, the limit, the audit trail and
// notices, and the cookies on w.
func (h *Handler) mint(w http.ResponseWriter, r *http.Request, who signedIn) (*session.Session, error) {
	// login_rate also caps session creations per user, whatever the IP.
	if err := h.rateLimit(r, limitLogin, "user:"+who.userID, who.userID, h.LoginRate); err != nil {
		return nil, err
	}
	ctx, cancel := h.storeContext(r.Context())
	defer cancel()

	// No session fixation: a session the client already holds ends here.
	// Only one it proves it holds: an id alone could end someone else's.
	cookies, _ := h.readCookies(r)
	for _, raw := range cookies.values() {
		if id, hash, err := session.ParseCredential(raw); err == nil {
			if v, err := h.store.Validate(ctx, id, hash, clientIP(r), h.now(), h.policy); err == nil && v.Status == session.Valid {
				if e, err := h.store.End(ctx, id, h.now(), session.EndRevoked, session.ActorSelf, h.policy); err == nil {
					h.metrics.revocation(session.ActorSelf, 1)
					h.forget(id)
					h.logEvent(session.EndEvent(e, h.now(), session.EndRevoked, session.ActorSelf))
				}
			}
		}
	}

	id, cookie, hash, err := session.NewCredential(who.userID)
	if err != nil {
		return nil, err
	}
	deviceID, deviceCookie := h.deviceID(r)
	s := h.newSession(id, who.userID, hash, who.method, clientIP(r), r.UserAgent(), deviceID)
	s.Email, s.Name, s.Roles = sanitise(who.email, maxValue), sanitise(who.name, maxValue), sanitise(who.roles, maxRoles)
	if who.prepare != nil {
		if err := who.prepare(s, credentialSecret(cookie)); err != nil {
			return nil, err
		}
	}
	ip := s.IP
	start := time.Now()
	ended, err := h.store.Create(ctx, s, h.policy, h.limit)
	h.metrics.storeDuration("create", start)
	if err != nil {
		h.abandon(s, err)
		return nil, err
	}
	h.recordLogin(r, s, ended)
	h.grace.seen(s, hash, s.CreatedAt)
	http.SetCookie(w, h.sessionCookie(r, cookie, h.policy.Lifetime))
	if deviceCookie != nil {
		http.SetCookie(w, deviceCookie)
	}
	w.Header().Set("Cache-Control", "no-store")
	setPlaceholders(r, s, ip, "false", s.Risk, s.CreatedAt.UTC().Format(time.RFC3339))
	return s, nil
}

// credentialSecret is the secret half of a cookie value "<id>.<secret>".
func credentialSecret(cookie string) string {
	for i := 0; i < len(cookie); i++ {
		if cookie[i] == '.' {
			return cookie[i+1:]
		}
	}
	return ""
}
