package sessionauth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/sessionauth/caddy-sessionauth/session"
)

// selfService is the user's own pages and endpoints under `endpoints`:
// /me, the sign-out, the sessions page and its revocations, and the
// "Not you?" link of the notices.
type selfService struct {
	cookies   *cookieRules
	endpoints string
	baseURL   string
	store     session.Store
	policy    session.Policy
	metrics   *metrics
	now       func() time.Time
	tokens    *apiTokens // nil unless api_tokens: the page lists them, and a bearer is no browser
	// accountPage: sign_in is on, so the sessions page links to the account page.
	accountPage bool
	host        selfHost
	providers   interface { // the OIDC part: logout at the provider too
		logoutURL(r *http.Request, s *session.Session, secret, next string) string
	}
}

// selfHost is what the pages take from the handler: authentication,
// the cookie, ending sessions, the answers, and the links.
type selfHost interface {
	authenticate(r *http.Request) auth
	authenticateVouched(r *http.Request) auth
	requireSession(w http.ResponseWriter, r *http.Request) (*session.Session, error)
	refuse(w http.ResponseWriter, r *http.Request, err error) error
	setIdentity(r *http.Request, s *session.Session) string
	storeUnavailable(w http.ResponseWriter, r *http.Request, err error) error
	sessionEnded(s *session.Session, e ending)
	sessionsEnded(ended []*session.Session, e ending)
	linkToken(s *session.Session) string
	passwordLink() string
}

func newSelfService(h *Handler) *selfService {
	return &selfService{cookies: h.cookies, endpoints: h.Endpoints, baseURL: h.BaseURL, store: h.store, policy: h.policy,
		metrics: h.metrics, now: h.now, tokens: h.tokens, host: h, providers: h.oidc, accountPage: h.signIn != nil}
}

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

func (ss *selfService) sessionsPage(w http.ResponseWriter, r *http.Request) error {
	cur, err := ss.host.requireSession(w, r)
	if cur == nil {
		return err
	}
	w.Header().Set("X-CSRF-Token", csrfToken(cur)) // for JSON clients' POSTs
	ctx := r.Context()
	list, err := ss.store.List(ctx, cur.UserID, ss.now(), ss.policy)
	if err != nil {
		return ss.host.storeUnavailable(w, r, err)
	}
	now := ss.now()
	if wantsJSON(r) {
		out := make([]sessionJSON, 0, len(list))
		for _, s := range list {
			out = append(out, toJSON(s, ss.policy, now, cur.ID))
		}
		return writeJSON(w, http.StatusOK, out)
	}
	return ss.renderSessions(w, r, cur, list, now)
}

// revoke ends one of the caller's sessions (id), or all the others
// (id empty).
func (ss *selfService) revoke(w http.ResponseWriter, r *http.Request, id string) error {
	if ss.tokens.crossSiteRefused(r) {
		return writeJSON(w, http.StatusForbidden, errorBody{"cross_site_request"})
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	cur, err := ss.host.requireSession(w, r)
	if cur == nil {
		return err
	}
	ctx := r.Context()
	// Another user's session is "not found", exactly like an unknown id,
	// whatever else is wrong with the request.
	if id != "" {
		s, err := ss.store.Get(ctx, id)
		if !session.ValidID(id) || errors.Is(err, session.ErrNotFound) || (err == nil && s.UserID != cur.UserID) {
			return writeJSON(w, http.StatusNotFound, errorBody{"not_found"})
		}
		if err != nil {
			return ss.host.storeUnavailable(w, r, err)
		}
	}
	// A bearer token is never sent by a browser on its own: no CSRF.
	if !cur.IsToken() && !validCSRF(r, cur) {
		return writeJSON(w, http.StatusForbidden, errorBody{"csrf"})
	}
	now := ss.now()
	var ended []*session.Session
	if id == "" {
		ended, err = ss.store.EndUser(ctx, cur.UserID, cur.ID, now, session.EndRevoked, session.ActorSelf, ss.policy)
		if err != nil {
			return ss.host.storeUnavailable(w, r, err)
		}
	} else {
		// Revoked, not signed out: the tokens it made end with it (SPEC 12).
		ended, err = ss.store.EndWithTokens(ctx, id, now, session.EndRevoked, session.ActorSelf, ss.policy)
		if errors.Is(err, session.ErrNotFound) || (err == nil && ended[0].ID != id) {
			// Not active: its tokens (if any) were ended all the same.
			ss.host.sessionsEnded(ended, ending{reason: session.EndRevoked, actor: session.ActorSelf, at: now, ctx: r.Context()})
			return writeJSON(w, http.StatusNotFound, errorBody{"not_found"})
		}
		if err != nil {
			return ss.host.storeUnavailable(w, r, err)
		}
	}
	ss.host.sessionsEnded(ended, ending{reason: session.EndRevoked, actor: session.ActorSelf, at: now, ctx: r.Context()})
	if id == cur.ID {
		http.SetCookie(w, ss.cookies.sessionCookie(r, "", -1))
	}
	if wantsJSON(r) || r.Header.Get("X-CSRF-Token") != "" {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	target := ss.endpoints + "/sessions"
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
