package sessionauth

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/sessionauth/caddy-sessionauth/session"
)

// APITokens turns on personal access tokens (SPEC section 12): a user
// creates one on the sessions page, and scripts send it as
// `Authorization: Bearer sat_…`. Each is a session of kind token.
type APITokens struct {
	// The longest lifetime a user may give a token, and the lifetime of
	// one created without. Default 2160h (90 days).
	MaxLifetime caddy.Duration `json:"max_lifetime,omitempty"`
}

const (
	tokenPrefix            = "sat_"
	defaultTokenLifetime   = 90 * 24 * time.Hour
	maxTokenName           = 100
	tokenRequestLimitBytes = 16 << 10
)

// bearer returns the credential of an API token in the Authorization
// header, when tokens are on and the header holds one of ours. Any other
// Authorization (the app's own) is left alone.
func (h *Handler) bearer(r *http.Request) (string, bool) {
	if h.APITokens == nil {
		return "", false
	}
	scheme, cred, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.CutPrefix(strings.TrimSpace(cred), tokenPrefix)
}

// authenticateToken checks a bearer token: the same one round trip as a
// cookie. A token that matches nothing counts towards guess_rate; there is
// never a cookie to clear.
func (h *Handler) authenticateToken(r *http.Request, cred string) auth {
	a, matched := h.checkCredential(r, cred, true)
	switch {
	case a.err != nil, a.sess != nil:
		return a
	case matched:
		a.clearCookie = false
		return a
	}
	g := h.guessed(r)
	g.clearCookie = false
	return g
}

// checkCredential validates a cookie's or a bearer's credential; a
// session of the other kind is not a match (a browser's cookie value is
// no API token, and a token is no cookie).
func (h *Handler) checkCredential(r *http.Request, raw string, token bool) (auth, bool) {
	a, matched := h.checkCookie(r, raw)
	if a.sess != nil && a.sess.IsToken() != token {
		return auth{}, false
	}
	return a, matched
}

// stripBearer removes our API token from the request before it goes
// upstream, as stripOwnCookies does the cookie: the app never needs it.
func (h *Handler) stripBearer(r *http.Request) {
	if _, ok := h.bearer(r); ok {
		r.Header.Del("Authorization")
	}
}

// crossSiteRefused: a state-changing request another site made a browser
// send. A request carrying an API token is exempt: a browser never adds
// one by itself.
func (h *Handler) crossSiteRefused(r *http.Request) bool {
	if _, ok := h.bearer(r); ok {
		return false
	}
	return crossSite(r)
}

// serveTokens routes POST /tokens and POST /tokens/<id>/revoke.
func (h *Handler) serveTokens(w http.ResponseWriter, r *http.Request, rest string) error {
	if h.APITokens == nil {
		return writeJSON(w, http.StatusNotFound, errorBody{"not_found"})
	}
	if r.Method != http.MethodPost {
		return methodNotAllowed(w, "POST")
	}
	switch {
	case rest == "":
		return h.createToken(w, r)
	case strings.HasSuffix(rest, "/revoke") && strings.Count(rest, "/") == 2:
		return h.revokeToken(w, r, strings.TrimSuffix(strings.TrimPrefix(rest, "/"), "/revoke"))
	}
	return writeJSON(w, http.StatusNotFound, errorBody{"not_found"})
}

type tokenRequest struct {
	Name     string `json:"name"`
	Lifetime string `json:"lifetime"`
}

type tokenResponse struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Token     string `json:"token"`
	ExpiresAt string `json:"expires_at"`
	expires   time.Time
}

// mintToken creates an API token for the user, email, name and roles of
// who, seen from who's IP and user agent, in st, and records
// token_created by actor. The answer is the only place the value is.
func (h *Handler) mintToken(ctx context.Context, st session.Store, who *session.Session, name string, life time.Duration, actor string) (tokenResponse, error) {
	id, cred, hash, err := st.NewCredential(ctx, who.UserID)
	if err != nil {
		return tokenResponse{}, err
	}
	s := h.newSession(id, who.UserID, hash, session.MethodToken, who.IP, who.UserAgent, "")
	s.Kind, s.Label, s.TokenLifetime = session.KindToken, name, life
	s.Email, s.Name, s.Roles = who.Email, who.Name, who.Roles
	if who.Provider != "" {
		// A token made by a provider's session ends with it: a back-channel
		// logout of that provider session or user, or the provider
		// refusing that session's refresh (recheck), reaches it too.
		s.Provider, s.Subject, s.ProviderSID = who.Provider, who.Subject, who.ProviderSID
		if err := h.linkProviderSession(ctx, who.Provider, who.UserID, who.Subject, who.ProviderSID, h.policy.ExpiresAt(s).Sub(s.CreatedAt)); err != nil {
			return tokenResponse{}, err
		}
	}
	if _, err := st.Create(ctx, s, h.policy, h.limit); err != nil {
		h.abandon(s, err)
		return tokenResponse{}, err
	}
	e := eventOf(s, session.EventTokenCreated, s.CreatedAt, "")
	e.Actor = actor
	if err := st.Record(ctx, e, h.policy); err != nil {
		h.logger.Warn("recording token_created", zap.String("session_id", id), zap.Error(err))
	}
	h.logEvent(e)
	exp := h.policy.ExpiresAt(s).UTC()
	return tokenResponse{ID: id, Name: name, Token: tokenPrefix + cred, ExpiresAt: rfc3339(exp), expires: exp}, nil
}

var problemTokenByToken = problem{http.StatusForbidden, "token_cannot_create_tokens",
	"Access tokens are made on the sessions page",
	"An access token cannot create another one. Sign in with your browser and create it on the sessions page."}

// createToken makes an API token for the signed-in user: the value is in
// the answer and nowhere else, ever.
func (h *Handler) createToken(w http.ResponseWriter, r *http.Request) error {
	if crossSite(r) {
		return writeJSON(w, http.StatusForbidden, errorBody{"cross_site_request"})
	}
	r.Body = http.MaxBytesReader(w, r.Body, tokenRequestLimitBytes)
	cur, err := h.requireSession(w, r)
	if cur == nil {
		return err
	}
	if cur.IsToken() {
		return answer(w, r, problemTokenByToken)
	}
	var req tokenRequest
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			return writeJSON(w, http.StatusBadRequest, errorBody{"bad_request"})
		}
	} else {
		req.Name, req.Lifetime = r.PostFormValue("name"), r.PostFormValue("lifetime")
	}
	if !validCSRF(r, cur) {
		return writeJSON(w, http.StatusForbidden, errorBody{"csrf"})
	}
	name, life, msg := h.tokenParams(req)
	if msg != "" {
		return answer(w, r, problem{http.StatusBadRequest, "bad_request", "The token was not created", msg})
	}
	ctx, cancel := h.storeContext(r.Context())
	defer cancel()
	tmpl := &session.Session{UserID: cur.UserID, Email: cur.Email, Name: cur.Name, Roles: cur.Roles, IP: clientIP(r), UserAgent: r.UserAgent(),
		Provider: cur.Provider, Subject: cur.Subject, ProviderSID: cur.ProviderSID}
	out, err := h.mintToken(ctx, h.store, tmpl, name, life, session.ActorSelf)
	if err == nil {
		err = h.sealTokenChain(ctx, r, cur, out) // SPEC 11 Recheck: the token is checked as its session is
	}
	if err != nil {
		return h.storeUnavailable(w, r, err)
	}
	if wantsPage(r) {
		htmlHeaders(w)
		w.WriteHeader(http.StatusCreated)
		return pages.ExecuteTemplate(w, "token.html", tokenPageData{tokenResponse: out, Endpoints: h.Endpoints,
			Expires: out.expires.Format(time.RFC1123)})
	}
	return writeJSON(w, http.StatusCreated, out)
}

type tokenPageData struct {
	tokenResponse
	Endpoints, Expires string
}

// tokenParams checks a token's name and lifetime, or says in words what
// is wrong with them.
func (h *Handler) tokenParams(req tokenRequest) (name string, life time.Duration, msg string) {
	name = strings.TrimSpace(req.Name)
	if name == "" || utf8.RuneCountInString(name) > maxTokenName || sanitise(name, 4*maxTokenName) != name {
		return "", 0, "Give the token a name of up to 100 characters, so that you know it again in the list."
	}
	maxLife := time.Duration(h.APITokens.MaxLifetime)
	life = maxLife
	if req.Lifetime != "" {
		d, err := caddy.ParseDuration(req.Lifetime)
		if err != nil || d <= 0 {
			return "", 0, "The lifetime must be a duration such as 720h or 30d."
		}
		if d > maxLife {
			return "", 0, "The lifetime may be at most " + humanDuration(maxLife) + " on this site."
		}
		life = d
	}
	return name, life.Truncate(time.Millisecond), ""
}

// humanDuration says a whole number of days as days.
func humanDuration(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return plural(int(d/(24*time.Hour)), "day")
	}
	return d.String()
}

// revokeToken ends one of the caller's own API tokens; another user's
// token, or a browser session's id, is not found.
func (h *Handler) revokeToken(w http.ResponseWriter, r *http.Request, id string) error {
	if !session.ValidID(id) {
		return writeJSON(w, http.StatusNotFound, errorBody{"not_found"})
	}
	ctx, cancel := h.storeContext(r.Context())
	defer cancel()
	s, err := h.store.Get(ctx, id)
	switch {
	case errors.Is(err, session.ErrNotFound), err == nil && !s.IsToken():
		return writeJSON(w, http.StatusNotFound, errorBody{"not_found"})
	case err != nil:
		return h.storeUnavailable(w, r, err)
	}
	return h.selfRevoke(w, r, id)
}

// adminTokenRequest is the body of POST /session-auth/users/<user>/tokens.
type adminTokenRequest struct {
	Name     string `json:"name"`     // the token's
	Lifetime string `json:"lifetime"` // a duration; default max_lifetime
	Email    string `json:"email"`
	Roles    string `json:"roles"`
}

// mintToken (admin) creates an API token for user on the first store whose
// handler has api_tokens on, under that handler's max_lifetime.
func (a adminAPI) mintToken(w http.ResponseWriter, r *http.Request, stores []storeRef, user string) error {
	var ref *storeRef
	for i := range stores {
		if stores[i].h.APITokens != nil {
			ref = &stores[i]
			break
		}
	}
	if ref == nil {
		return apiError(http.StatusNotFound, "no session_auth handler has api_tokens on")
	}
	var req adminTokenRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, tokenRequestLimitBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return apiError(http.StatusBadRequest, "bad JSON body: %v", err)
	}
	if err := checkIdentity(user, req.Email, "", req.Roles); err != nil {
		return apiError(http.StatusBadRequest, "%v", err)
	}
	h := ref.h
	name, life, msg := h.tokenParams(tokenRequest{Name: req.Name, Lifetime: req.Lifetime})
	if msg != "" {
		return apiError(http.StatusBadRequest, "%s", msg)
	}
	who := &session.Session{UserID: user, Email: sanitise(req.Email, maxValue), Roles: sanitise(req.Roles, maxRoles)}
	out, err := h.mintToken(r.Context(), ref.store, who, name, life, session.ActorAdmin)
	if err != nil {
		return storeError(err)
	}
	return writeJSON(w, http.StatusCreated, out)
}
