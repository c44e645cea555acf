package sessionauth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sessionauth/caddy-sessionauth/session"
)

// csrfToken is the per-session token the self-service forms carry. It is
// derived from the hash of the session's secret, which only the store and
// the gateways know: every gateway computes the same token, and nobody
// without the cookie can.
func csrfToken(s *session.Session) string {
	mac := hmac.New(sha256.New, s.TokenHash[:])
	mac.Write([]byte("csrf:" + s.ID))
	return hex.EncodeToString(mac.Sum(nil))[:32]
}

func validCSRF(r *http.Request, s *session.Session) bool {
	got := r.Header.Get("X-CSRF-Token")
	if got == "" {
		got = r.PostFormValue("csrf")
	}
	return hmac.Equal([]byte(got), []byte(csrfToken(s)))
}

// serveSessions routes /sessions, /sessions/revoke-others and
// /sessions/<id>/revoke under the endpoints prefix.
func (h *Handler) serveSessions(w http.ResponseWriter, r *http.Request, rest string) error {
	switch {
	case rest == "":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			return methodNotAllowed(w, "GET, HEAD")
		}
		return h.sessionsPage(w, r)
	case rest == "/revoke-others":
		if r.Method != http.MethodPost {
			return methodNotAllowed(w, "POST")
		}
		return h.selfRevoke(w, r, "")
	case strings.HasSuffix(rest, "/revoke") && strings.Count(rest, "/") == 2:
		if r.Method != http.MethodPost {
			return methodNotAllowed(w, "POST")
		}
		return h.selfRevoke(w, r, strings.TrimSuffix(strings.TrimPrefix(rest, "/"), "/revoke"))
	}
	return writeJSON(w, http.StatusNotFound, errorBody{"not_found"})
}

// requireSession authenticates a self-service request. Without a session
// it has already answered, as the gateway answers any unauthenticated
// request (with a way back to the page for a browser): it returns a nil
// session and what ServeHTTP should return.
func (h *Handler) requireSession(w http.ResponseWriter, r *http.Request) (*session.Session, error) {
	a := h.authenticateVouched(r)
	if a.err != nil {
		return nil, h.refuse(w, r, a.err)
	}
	if a.sess == nil {
		return nil, h.noSession(w, r, a)
	}
	h.metrics.request(outcomeAuthenticated)
	h.setIdentity(r, a.sess)
	return a.sess, nil
}

func (h *Handler) sessionsPage(w http.ResponseWriter, r *http.Request) error {
	cur, err := h.requireSession(w, r)
	if cur == nil {
		return err
	}
	w.Header().Set("X-CSRF-Token", csrfToken(cur)) // for JSON clients' POSTs
	ctx := r.Context()
	list, err := h.store.List(ctx, cur.UserID, h.now(), h.policy)
	if err != nil {
		return h.storeUnavailable(w, r, err)
	}
	now := h.now()
	if wantsJSON(r) {
		out := make([]sessionJSON, 0, len(list))
		for _, s := range list {
			out = append(out, toJSON(s, h.policy, now, cur.ID))
		}
		return writeJSON(w, http.StatusOK, out)
	}
	return h.renderSessions(w, r, cur, list, now)
}

// selfRevoke ends one of the caller's sessions (id), or all the others
// (id empty).
func (h *Handler) selfRevoke(w http.ResponseWriter, r *http.Request, id string) error {
	if h.tokens.crossSiteRefused(r) {
		return writeJSON(w, http.StatusForbidden, errorBody{"cross_site_request"})
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	cur, err := h.requireSession(w, r)
	if cur == nil {
		return err
	}
	ctx := r.Context()
	// Another user's session is "not found", exactly like an unknown id,
	// whatever else is wrong with the request.
	if id != "" {
		s, err := h.store.Get(ctx, id)
		if !session.ValidID(id) || errors.Is(err, session.ErrNotFound) || (err == nil && s.UserID != cur.UserID) {
			return writeJSON(w, http.StatusNotFound, errorBody{"not_found"})
		}
		if err != nil {
			return h.storeUnavailable(w, r, err)
		}
	}
	// A bearer token is never sent by a browser on its own: no CSRF.
	if !cur.IsToken() && !validCSRF(r, cur) {
		return writeJSON(w, http.StatusForbidden, errorBody{"csrf"})
	}
	now := h.now()
	var ended []*session.Session
	if id == "" {
		ended, err = h.store.EndUser(ctx, cur.UserID, cur.ID, now, session.EndRevoked, session.ActorSelf, h.policy)
		if err != nil {
			return h.storeUnavailable(w, r, err)
		}
	} else {
		// Revoked, not signed out: the tokens it made end with it (SPEC 12).
		ended, err = h.store.EndWithTokens(ctx, id, now, session.EndRevoked, session.ActorSelf, h.policy)
		if errors.Is(err, session.ErrNotFound) || (err == nil && ended[0].ID != id) {
			// Not active: its tokens (if any) were ended all the same.
			h.sessionsEnded(ended, ending{reason: session.EndRevoked, actor: session.ActorSelf, at: now})
			return writeJSON(w, http.StatusNotFound, errorBody{"not_found"})
		}
		if err != nil {
			return h.storeUnavailable(w, r, err)
		}
	}
	h.sessionsEnded(ended, ending{reason: session.EndRevoked, actor: session.ActorSelf, at: now})
	if id == cur.ID {
		http.SetCookie(w, h.sessionCookie(r, "", -1))
	}
	if wantsJSON(r) || r.Header.Get("X-CSRF-Token") != "" {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	target := h.Endpoints + "/sessions"
	if id == cur.ID {
		target = "/"
	}
	w.Header().Set("Location", target)
	w.WriteHeader(http.StatusSeeOther)
	return nil
}

// relTime says how long ago t was, the way people say it.
func relTime(t, now time.Time) string {
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return plural(int(d/time.Minute), "minute") + " ago"
	case d < 24*time.Hour:
		return plural(int(d/time.Hour), "hour") + " ago"
	case d < 60*24*time.Hour:
		return plural(int(d/(24*time.Hour)), "day") + " ago"
	}
	return "on " + t.UTC().Format("2 Jan 2006")
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return strconv.Itoa(n) + " " + unit + "s"
}
