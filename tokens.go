package sessionauth

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/sessionauth/caddy-sessionauth/geo"
	"github.com/sessionauth/caddy-sessionauth/session"
)

// APITokens turns on personal access tokens (SPEC section 12): a user
// creates one on the sessions page, and scripts send it as
// `Authorization: Bearer sat_…`. Each is a session of kind token.
type APITokens struct {
	// The longest lifetime a user may give a token, and the lifetime of
	// one created without. Default 2160h (90 days).
	MaxLifetime caddy.Duration `json:"max_lifetime,omitempty"`

	// A token is made only from a session that signed in or stepped up
	// within this long; otherwise a browser is sent to the step-up and an
	// API client gets 403 {"error":"step_up_required"}. Default 10m.
	Fresh caddy.Duration `json:"fresh,omitempty"`

	// The most live tokens one user may have; one more is refused with
	// 409. Default 50.
	MaxPerUser int `json:"max_per_user,omitempty"`
}

const (
	tokenPrefix            = "sat_"
	defaultTokenLifetime   = 90 * 24 * time.Hour
	defaultTokenFresh      = 10 * time.Minute
	defaultTokensPerUser   = 50
	maxTokenName           = 100
	tokenRequestLimitBytes = 16 << 10
)

// apiTokens is the personal access tokens part (SPEC 12): the bearer
// credential on every request, the /tokens routes of the sessions page
// and minting, for the user or the admin API. nil when api_tokens is off.
type apiTokens struct {
	cfg       *APITokens
	endpoints string
	store     session.Store
	policy    session.Policy
	limit     session.Limit
	logger    *zap.Logger
	now       func() time.Time
	signIn    bool      // the gateway's own sign-in: a stale session is sent to its step-up
	notifier  *notifier // nil when off
	self      *selfService
	host      tokenHost
	providers tokenProviders
}

// tokenHost is what tokens take from the handler: its authentication,
// its answers, and the flows every sign-in shares.
type tokenHost interface {
	checkCookie(r *http.Request, raw string) (auth, bool)
	guessed(r *http.Request) auth
	requireSession(w http.ResponseWriter, r *http.Request) (*session.Session, error)
	riskOf(s *session.Session, ip string) string
	unauthenticated(w http.ResponseWriter, r *http.Request, clearCookie bool, ended string) error
	storeUnavailable(w http.ResponseWriter, r *http.Request, err error) error
	newSession(ctx context.Context, id, userID string, hash [32]byte, method, ip, ua, deviceID string) *session.Session
	abandon(s *session.Session, err error)
	logEvent(e session.Event)
}

// tokenProviders is what tokens take from the OIDC part (signin_oidc.go):
// a token of a provider's session is linked to it and checked as it is.
type tokenProviders interface {
	linkSession(ctx context.Context, provider, userID, sub, sid string, ttl time.Duration) error
	sealTokenChain(ctx context.Context, r *http.Request, parent *session.Session, out tokenResponse) error
}

// newAPITokens builds the part from h's config, after its store; nil
// when api_tokens is off.
func newAPITokens(h *Handler) *apiTokens {
	if h.APITokens == nil {
		return nil
	}
	return &apiTokens{cfg: h.APITokens, endpoints: h.Endpoints, store: h.store, policy: h.policy, limit: h.limit,
		logger: h.logger, now: h.now, signIn: h.signInEnabled, notifier: h.notifier, host: h, providers: h.oidc}
}

// setSelf gives the tokens the self-service part, which revokes them.
func (t *apiTokens) setSelf(s *selfService) {
	if t != nil {
		t.self = s
	}
}

// bearer returns the credential of an API token in the Authorization
// header, when tokens are on and the header holds one of ours. Any other
// Authorization (the app's own) is left alone.
func (t *apiTokens) bearer(r *http.Request) (string, bool) {
	if t == nil {
		return "", false
	}
	scheme, cred, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.CutPrefix(strings.TrimSpace(cred), tokenPrefix)
}

// authenticate checks a bearer token: the same one round trip as a
// cookie. A token that matches nothing counts towards guess_rate; there is
// never a cookie to clear.
func (t *apiTokens) authenticate(r *http.Request, cred string) auth {
	a, matched := t.host.checkCookie(r, cred)
	if a.sess != nil && !a.sess.IsToken() {
		a, matched = auth{}, false // a browser's cookie value is no API token
	}
	switch {
	case a.err != nil, a.sess != nil:
		return a
	case matched:
		a.clearCookie = false
		return a
	}
	g := t.host.guessed(r)
	g.clearCookie = false
	return g
}

// cookieOnly keeps a cookie's check from accepting an API token: a
// token is no cookie.
func cookieOnly(a auth, matched bool) (auth, bool) {
	if a.sess != nil && a.sess.IsToken() {
		return auth{}, false
	}
	return a, matched
}

// stripBearer removes our API token from the request before it goes
// upstream, as stripOwnCookies does the cookie: the app never needs it.
func (t *apiTokens) stripBearer(r *http.Request) {
	if _, ok := t.bearer(r); ok {
		r.Header.Del("Authorization")
	}
}

// crossSiteRefused: a state-changing request another site made a browser
// send. A request carrying an API token is exempt: a browser never adds
// one by itself.
func (t *apiTokens) crossSiteRefused(r *http.Request) bool {
	if _, ok := t.bearer(r); ok {
		return false
	}
	return crossSite(r)
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

// tokenDevice is what an API token's device is called: a token is made
// to be used from elsewhere, so it is not the browser that made it.
const tokenDevice = "API token"

// mint creates an API token for the user, email, name and roles of
// who, in st, and records token_created by actor. who is the token as its
// maker sees it: a session's token carries that session as Parent, with
// its authenticated_at and risk flags, and who's IP and user agent are
// the maker's. The answer is the only place the value is. A token over
// max_per_user is ErrTooManyTokens; one whose parent was revoked
// meanwhile, ErrNotFound.
func (t *apiTokens) mint(ctx context.Context, r *http.Request, st session.Store, who *session.Session, name string, life time.Duration, actor string) (tokenResponse, error) {
	id, cred, hash, err := st.NewCredential(ctx, who.UserID)
	if err != nil {
		return tokenResponse{}, err
	}
	s := t.host.newSession(ctx, id, who.UserID, hash, session.MethodToken, who.IP, "", "")
	s.Device, s.DeviceType, s.Browser, s.OS = tokenDevice, "", "", ""
	s.Kind, s.Label, s.TokenLifetime = session.KindToken, name, life
	s.Email, s.Name, s.Roles = who.Email, who.Name, who.Roles
	s.Parent, s.Risk = who.Parent, who.Risk
	if !who.AuthenticatedAt.IsZero() {
		s.AuthenticatedAt = who.AuthenticatedAt // the parent's: max_age judges the token as its maker
	}
	if who.Provider != "" {
		// A token made by a provider's session ends with it: a back-channel
		// logout of that provider session or user, or the provider
		// refusing that session's refresh (recheck), reaches it too.
		s.Provider, s.Subject, s.ProviderSID = who.Provider, who.Subject, who.ProviderSID
		if err := t.providers.linkSession(ctx, who.Provider, who.UserID, who.Subject, who.ProviderSID, t.policy.ExpiresAt(s).Sub(s.CreatedAt)); err != nil {
			return tokenResponse{}, err
		}
	}
	if _, err := st.Create(ctx, s, t.policy, t.limit); err != nil {
		t.host.abandon(s, err)
		return tokenResponse{}, err
	}
	// The event and the notice tell where the token was made: the
	// maker's device, not "API token".
	maker := s.Clone()
	if who.UserAgent != "" {
		d := geo.ParseUserAgent(sanitise(who.UserAgent, maxUserAgent))
		maker.Device, maker.Browser, maker.OS, maker.UserAgent = d.Name, d.Browser, d.OS, who.UserAgent
	}
	e := eventOf(maker, session.EventTokenCreated, s.CreatedAt, "")
	e.Actor = actor
	if err := st.Record(ctx, e, t.policy); err != nil {
		t.logger.Warn("recording token_created", zap.String("session_id", id), zap.Error(err))
	}
	t.host.logEvent(e)
	t.notifier.notify(r, noticeTokenCreated, maker, s.CreatedAt)
	exp := t.policy.ExpiresAt(s).UTC()
	return tokenResponse{ID: id, Name: name, Token: tokenPrefix + cred, ExpiresAt: rfc3339(exp), expires: exp}, nil
}

var problemTokenByToken = problem{http.StatusForbidden, "token_cannot_create_tokens",
	"Access tokens are made on the sessions page",
	"An access token cannot create another one. Sign in with your browser and create it on the sessions page."}

// problemNeedsStepUp: the session is not fresh enough to make a
// token (SPEC 12), and there is no step-up to send the browser to.
func (t *apiTokens) problemNeedsStepUp() problem {
	return problem{http.StatusForbidden, "step_up_required", "Sign in again to create an access token",
		"Access tokens are made only within " + humanDuration(time.Duration(t.cfg.Fresh)) +
			" of signing in. Sign out, sign in again, then create the token."}
}

// problem answers a token that was not made, with the way back to
// the sessions page, where tokens are made.
func (t *apiTokens) problem(w http.ResponseWriter, r *http.Request, p problem) error {
	return answerWithWay(w, r, p, &wayOn{t.endpoints + "/sessions", "Back to where you're signed in"})
}

// tooMany answers a token past max_per_user: 409, with a message
// for API clients and a page in words for a browser.
func (t *apiTokens) tooMany(w http.ResponseWriter, r *http.Request) error {
	msg := "You have " + plural(t.cfg.MaxPerUser, "access token") + ", the most this site allows. " +
		"Revoke one you no longer use on the sessions page, then create the new one."
	if wantsPage(r) {
		return t.problem(w, r, problem{http.StatusConflict, "too_many_tokens", "You have too many access tokens", msg})
	}
	return writeJSON(w, http.StatusConflict, struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}{"too_many_tokens", msg})
}

// create makes an API token for the signed-in user: the value is in
// the answer and nowhere else, ever.
func (t *apiTokens) create(w http.ResponseWriter, r *http.Request) error {
	if crossSite(r) {
		return writeJSON(w, http.StatusForbidden, errorBody{"cross_site_request"})
	}
	r.Body = http.MaxBytesReader(w, r.Body, tokenRequestLimitBytes)
	cur, err := t.host.requireSession(w, r)
	if cur == nil {
		return err
	}
	if cur.IsToken() {
		return t.problem(w, r, problemTokenByToken)
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
	// A token outlives the session that makes it: only a recent proof of
	// who the user is may make one, never an old or stolen cookie alone.
	if t.now().Sub(cur.AuthenticatedOrCreated()) > time.Duration(t.cfg.Fresh) {
		if c := t.logger.Check(zap.InfoLevel, "API token refused: the session did not sign in or step up recently"); c != nil {
			c.Write(zap.String("user_id", cur.UserID), zap.String("session_id", cur.ID))
		}
		if t.signIn && wantsPage(r) {
			w.Header().Set("Location", t.endpoints+"/sign-in?step_up=1&next="+url.QueryEscape(t.endpoints+"/sessions"))
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusSeeOther)
			return nil
		}
		return t.problem(w, r, t.problemNeedsStepUp())
	}
	name, life, msg := t.params(req)
	if msg != "" {
		return t.problem(w, r, problem{http.StatusBadRequest, "bad_request", "The token was not created", msg})
	}
	ctx := r.Context()
	// The token keeps what its maker proved and carries: when the user
	// last proved who they are and the risk flags, so that max_age and
	// no_risk judge it as they judge its maker.
	tmpl := &session.Session{UserID: cur.UserID, Email: cur.Email, Name: cur.Name, Roles: cur.Roles, IP: clientIP(r), UserAgent: r.UserAgent(),
		Provider: cur.Provider, Subject: cur.Subject, ProviderSID: cur.ProviderSID,
		Parent: cur.ID, AuthenticatedAt: cur.AuthenticatedOrCreated(), Risk: t.host.riskOf(cur, clientIP(r))}
	out, err := t.mint(ctx, r, t.store, tmpl, name, life, session.ActorSelf)
	if err == nil {
		err = t.providers.sealTokenChain(ctx, r, cur, out) // SPEC 11 Recheck: the token is checked as its session is
	}
	switch {
	case errors.Is(err, session.ErrTooManyTokens):
		return t.tooMany(w, r)
	case errors.Is(err, session.ErrNotFound):
		// The session was revoked while the token was being made.
		return t.host.unauthenticated(w, r, true, session.EndRevoked)
	case err != nil:
		return t.host.storeUnavailable(w, r, err)
	}
	if wantsPage(r) {
		htmlHeaders(w)
		w.WriteHeader(http.StatusCreated)
		return renderPage(w, pageToken, tokenPageData{tokenResponse: out, Endpoints: t.endpoints,
			Expires: out.expires.Format(time.RFC1123)})
	}
	return writeJSON(w, http.StatusCreated, out)
}

type tokenPageData struct {
	tokenResponse
	Endpoints, Expires string
}

// params checks a token's name and lifetime, or says in words what
// is wrong with them.
func (t *apiTokens) params(req tokenRequest) (name string, life time.Duration, msg string) {
	name = strings.TrimSpace(req.Name)
	if name == "" || utf8.RuneCountInString(name) > maxTokenName || sanitise(name, 4*maxTokenName) != name {
		return "", 0, "Give the token a name of up to 100 characters, so that you know it again in the list."
	}
	maxLife := time.Duration(t.cfg.MaxLifetime)
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

// humanDuration says a whole number of days, hours or minutes in words.
func humanDuration(d time.Duration) string {
	switch {
	case d%(24*time.Hour) == 0:
		return plural(int(d/(24*time.Hour)), "day")
	case d%time.Hour == 0:
		return plural(int(d/time.Hour), "hour")
	case d%time.Minute == 0:
		return plural(int(d/time.Minute), "minute")
	}
	return d.String()
}

// revoke ends one of the caller's own API tokens; another user's
// token, or a browser session's id, is not found.
func (t *apiTokens) revoke(w http.ResponseWriter, r *http.Request, id string) error {
	if !session.ValidID(id) {
		return writeJSON(w, http.StatusNotFound, errorBody{"not_found"})
	}
	ctx := r.Context()
	s, err := t.store.Get(ctx, id)
	switch {
	case errors.Is(err, session.ErrNotFound), err == nil && !s.IsToken():
		return writeJSON(w, http.StatusNotFound, errorBody{"not_found"})
	case err != nil:
		return t.host.storeUnavailable(w, r, err)
	}
	return t.self.revoke(w, r, id)
}

// adminTokenRequest is the body of POST /session-auth/users/<user>/tokens.
type adminTokenRequest struct {
	Name     string   `json:"name"`     // the token's
	Lifetime string   `json:"lifetime"` // a duration; default max_lifetime
	Email    string   `json:"email"`
	Roles    roleList `json:"roles"` // an array, or a comma-separated string, as for the mint
}

// mintToken (admin) creates an API token for user on the first store whose
// handler has api_tokens on, under that handler's max_lifetime.
func (a adminAPI) mintToken(w http.ResponseWriter, r *http.Request, stores []storeRef, user string) error {
	var ref *storeRef
	for i := range stores {
		if stores[i].h.tokens != nil {
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
	if err := checkIdentity(user, req.Email, "", string(req.Roles)); err != nil {
		return apiError(http.StatusBadRequest, "%v", err)
	}
	t := ref.h.tokens
	name, life, msg := t.params(tokenRequest{Name: req.Name, Lifetime: req.Lifetime})
	if msg != "" {
		return apiError(http.StatusBadRequest, "%s", msg)
	}
	who := &session.Session{UserID: user, Email: sanitise(req.Email, maxValue), Roles: sanitise(string(req.Roles), maxRoles)}
	out, err := t.mint(r.Context(), nil, ref.store, who, name, life, session.ActorAdmin)
	if errors.Is(err, session.ErrTooManyTokens) {
		return apiError(http.StatusConflict, "user %s has %d live API tokens, the most api_tokens max_per_user allows: revoke one first", sanitise(user, 64), t.cfg.MaxPerUser)
	}
	if err != nil {
		return storeError(err)
	}
	return writeJSON(w, http.StatusCreated, out)
}
