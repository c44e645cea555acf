package sessionauth

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/sessionauth/caddy-sessionauth/session"
)

// endpointRoutes is the table of the gateway's own routes under
// `endpoints` (default /.auth); they never reach the upstream. Each path
// has its methods' pattern and a pattern without a method that answers
// the others 405 in JSON, as the gateway always has; any other path is a
// JSON 404.
type endpointRoutes struct {
	mux *http.ServeMux
}

// signInRoute is the sign-in page (signin_page.go); it answers 404
// without sign_in.
type signInRoute interface {
	serve(w http.ResponseWriter, r *http.Request) error
	serveInvite(w http.ResponseWriter, r *http.Request) error // invite.go
}

// providerRoutes are the OIDC part's routes (signin_oidc.go,
// backchannel.go).
type providerRoutes interface {
	serveStart(w http.ResponseWriter, r *http.Request, name string) error
	serveCallback(w http.ResponseWriter, r *http.Request, name string) error
	serveBackchannel(w http.ResponseWriter, r *http.Request, name string) error
}

// routeCall carries a routed request's answer back to serve, and the
// request as it came: the handlers see it, not the table's copy.
type routeCall struct {
	r   *http.Request
	err error
}

type routeCallKey struct{}

// endpointFunc answers a route; rest is the route's {rest}.
type endpointFunc func(w http.ResponseWriter, r *http.Request, rest string) error

type route struct {
	pattern string
	f       endpointFunc
}

func newEndpointRoutes(signIn signInRoute, providers providerRoutes, self *selfService, tokens *apiTokens, fwd *forwardAuth, acct *accountPages, logger *zap.Logger) *endpointRoutes {
	e := &endpointRoutes{mux: http.NewServeMux()}
	page := func(f func(w http.ResponseWriter, r *http.Request) error) endpointFunc {
		return func(w http.ResponseWriter, r *http.Request, _ string) error { return f(w, r) }
	}
	notAllowed := func(allow string) endpointFunc {
		return func(w http.ResponseWriter, _ *http.Request, _ string) error { return methodNotAllowed(w, allow) }
	}
	notFound := func(w http.ResponseWriter, _ *http.Request, _ string) error {
		return writeJSON(w, http.StatusNotFound, errorBody{"not_found"})
	}
	routes := []route{
		{"GET /me", page(self.serveMe)},
		{"/me", notAllowed("GET, HEAD")},
		{"GET /sessions", page(self.sessionsPage)},
		{"/sessions", notAllowed("GET, HEAD")},
		{"POST /sessions/revoke-others", func(w http.ResponseWriter, r *http.Request, _ string) error { return self.revoke(w, r, "") }},
		{"/sessions/revoke-others", notAllowed("POST")},
		{"POST /sessions/{rest}/revoke", self.revoke},
		{"/sessions/{rest}/revoke", notAllowed("POST")},
		{"/sessions/{rest...}", notFound},
		{"/revoke", page(self.serveRevokeLink)},
		{"/sign-in", page(signIn.serve)},
		{"GET /invite", page(signIn.serveInvite)},
		{"POST /invite", page(signIn.serveInvite)},
		{"/invite", notAllowed("GET, HEAD, POST")},
		{"/sign-in/{rest...}", func(w http.ResponseWriter, r *http.Request, rest string) error {
			if crossSiteSubresource(r) {
				return crossSiteAttempt(logger, w, r)
			}
			return providers.serveStart(w, r, rest)
		}},
		{"/callback/{rest...}", providers.serveCallback},
		{"/callback", notFound},
		{"/backchannel-logout/{rest...}", providers.serveBackchannel},
		{"/backchannel-logout", notFound},
		{"/verify", page(fwd.serveVerify)},
		{"GET /logout", page(self.serveLogout)},
		{"HEAD /logout", notAllowed("GET, POST")}, // a GET pattern takes HEAD too: a HEAD never signs out
		{"POST /logout", page(self.serveLogout)},
		{"/logout", notAllowed("GET, POST")},
		{"/", notFound},
	}
	if tokens != nil {
		last := routes[len(routes)-1]
		routes = append(routes[:len(routes)-1],
			route{"POST /tokens", page(tokens.create)},
			route{"POST /tokens/{rest}/revoke", tokens.revoke},
			route{"POST /tokens/{rest...}", notFound},
			route{"/tokens/{rest...}", notAllowed("POST")},
			route{"/tokens", notAllowed("POST")},
			last)
	}
	if acct != nil {
		last := routes[len(routes)-1]
		routes = append(routes[:len(routes)-1],
			route{"GET /account", page(acct.show)},
			route{"/account", notAllowed("GET, HEAD")},
			route{"POST /account/password", page(acct.password)},
			route{"POST /account/totp", page(acct.totpStart)},
			route{"POST /account/totp/confirm", page(acct.totpConfirm)},
			route{"POST /account/totp/remove", page(acct.totpRemove)},
			route{"POST /account/recovery-codes", page(acct.recoveryCodes)},
			route{"/account/password", notAllowed("POST")},
			route{"/account/totp", notAllowed("POST")},
			route{"/account/totp/confirm", notAllowed("POST")},
			route{"/account/totp/remove", notAllowed("POST")},
			route{"/account/recovery-codes", notAllowed("POST")},
			route{"/account/{rest...}", notFound},
			last)
	}
	e.add(routes)
	return e
}

// add puts routes in the table (a part that is on adds its own).
func (e *endpointRoutes) add(routes []route) {
	for _, rt := range routes {
		f := rt.f
		e.mux.HandleFunc(rt.pattern, func(w http.ResponseWriter, routed *http.Request) {
			c := routed.Context().Value(routeCallKey{}).(*routeCall)
			c.err = f(w, c.r, routed.PathValue("rest"))
		})
	}
}

// serve answers a request under the prefix; sub is its cleaned path
// below it.
func (e *endpointRoutes) serve(w http.ResponseWriter, r *http.Request, sub string) error {
	w.Header().Set("Cache-Control", "no-store")
	if sub == "" {
		sub = "/" // the prefix itself: no route
	}
	c := &routeCall{r: r}
	routed := r.WithContext(context.WithValue(r.Context(), routeCallKey{}, c))
	u := *r.URL
	u.Path, u.RawPath = sub, ""
	routed.URL, routed.RequestURI = &u, sub
	e.mux.ServeHTTP(w, routed)
	return c.err
}

func methodNotAllowed(w http.ResponseWriter, allow string) error {
	w.Header().Set("Allow", allow)
	return writeJSON(w, http.StatusMethodNotAllowed, errorBody{"method_not_allowed"})
}

type meJSON struct {
	User    userJSON    `json:"user"`
	Session sessionJSON `json:"session"`
}

type userJSON struct {
	ID    string   `json:"id"`
	Email string   `json:"email,omitempty"`
	Name  string   `json:"name,omitempty"`
	Roles []string `json:"roles,omitempty"`
}

func (ss *selfService) serveMe(w http.ResponseWriter, r *http.Request) error {
	a := ss.host.authenticateVouched(r)
	if a.err != nil {
		return ss.host.refuse(w, r, a.err)
	}
	if a.sess == nil {
		ss.metrics.request(a.outcome)
		if a.clearCookie {
			http.SetCookie(w, ss.cookies.sessionCookie(r, "", -1))
		}
		return writeJSON(w, http.StatusUnauthorized, errorBody{"unauthenticated"})
	}
	ss.metrics.request(outcomeAuthenticated)
	s := a.sess
	ss.host.setIdentity(r, s) // for the access log's user_id and other placeholders
	w.Header().Set("X-CSRF-Token", csrfToken(s))
	u := userJSON{ID: s.UserID, Email: s.Email, Name: s.Name}
	for _, role := range strings.Split(s.Roles, ",") {
		if role = strings.TrimSpace(role); role != "" {
			u.Roles = append(u.Roles, role)
		}
	}
	return writeJSON(w, http.StatusOK, meJSON{User: u, Session: toJSON(s, ss.policy, ss.now(), s.ID)})
}

// crossSite reports a state-changing request another site made the
// browser send: Sec-Fetch-Site says so (another site, or a sibling
// subdomain of this one), or Origin is not this request's
// own origin (scheme, host and port: https://host is another origin than
// an http://host site, and so is another port).
func crossSite(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "cross-site", "same-site": // same-site: a sibling subdomain, another origin
		return true
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return false
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.User != nil {
		return true // "null" and garbage: not our own origin
	}
	scheme := requestScheme(r)
	return !strings.EqualFold(u.Scheme, scheme) ||
		!strings.EqualFold(hostWithPort(u.Host, u.Scheme), hostWithPort(r.Host, scheme))
}

// crossSiteSubresource reports a request that another site's page made
// the browser send without navigating to it (an <img>, a no-cors fetch, a
// frame): such a request to a login path or a provider start could only
// spend the visitor's login_rate.
func crossSiteSubresource(r *http.Request) bool {
	return r.Header.Get("Sec-Fetch-Site") == "cross-site" && r.Header.Get("Sec-Fetch-Dest") != "document"
}

// crossSiteAttempt refuses a cross-site sign-in attempt before it counts
// towards login_rate or reaches the upstream.
func crossSiteAttempt(logger *zap.Logger, w http.ResponseWriter, r *http.Request) error {
	if c := logger.Check(zap.InfoLevel, "cross-site sign-in attempt that is no navigation: refused, not counted"); c != nil {
		c.Write(zap.String("ip_address", clientIP(r)), zap.String("path", sanitise(r.URL.Path, 256)),
			zap.String("dest", sanitise(r.Header.Get("Sec-Fetch-Dest"), 32)))
	}
	return answer(w, r, problemCrossSite)
}

// requestScheme is the scheme the client used: https when the connection
// is TLS, or when a trusted proxy in front says it terminated TLS.
func requestScheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	if trusted, _ := caddyhttp.GetVar(r.Context(), caddyhttp.TrustedProxyVarKey).(bool); trusted &&
		strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") {
		return "https"
	}
	return "http"
}

// hostWithPort spells host[:port] with the scheme's default port made
// explicit, so that host and host:443 compare equal under https.
func hostWithPort(host, scheme string) string {
	if _, _, err := net.SplitHostPort(host); err == nil {
		return host
	}
	if scheme == "https" {
		return net.JoinHostPort(strings.Trim(host, "[]"), "443")
	}
	return net.JoinHostPort(strings.Trim(host, "[]"), "80")
}

// serveLogout ends the current session, clears the cookie and sends the
// browser on to a same-origin next, or answers 204 to JSON clients. A GET
// that does not show it comes from this origin (an <img> on a sibling
// subdomain, a link from elsewhere, a client without Sec-Fetch-*) ends
// nothing: a browser gets a page whose button posts the sign-out.
func (ss *selfService) serveLogout(w http.ResponseWriter, r *http.Request) error {
	if _, bearer := ss.tokens.bearer(r); r.Method == http.MethodGet && !bearer && !sameOriginShown(r) {
		if !wantsPage(r) {
			return writeJSON(w, http.StatusForbidden, errorBody{"cross_site_request"})
		}
		return ss.logoutPage(w, r)
	}
	if ss.tokens.crossSiteRefused(r) {
		return writeJSON(w, http.StatusForbidden, errorBody{"cross_site_request"})
	}
	a := ss.host.authenticate(r)
	if a.err != nil {
		return ss.host.refuse(w, r, a.err)
	}
	if a.sess != nil {
		ss.host.setIdentity(r, a.sess)
		ctx := r.Context()
		now := ss.now()
		s, err := ss.store.End(ctx, a.sess.ID, now, session.EndLogout, session.ActorSelf, ss.policy)
		switch {
		case err == nil:
			ss.host.sessionEnded(s, ending{reason: session.EndLogout, actor: session.ActorSelf, at: now, quiet: true})
		case !errors.Is(err, session.ErrNotFound):
			// The session is still alive: say so rather than pretend.
			return ss.host.storeUnavailable(w, r, err)
		}
	}
	http.SetCookie(w, ss.cookies.sessionCookie(r, "", -1))
	if wantsJSON(r) {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	if a.sess != nil {
		flagSignedOut(ss.cookies, w, r)
	}
	next := safeNext(r.URL.Query().Get("next"))
	if a.sess != nil && a.sess.Provider != "" {
		if to := ss.providers.logoutURL(r, a.sess, a.secret, next); to != "" {
			next = to
		}
	}
	w.Header().Set("Location", next)
	w.WriteHeader(http.StatusSeeOther)
	return nil
}

// sameOriginShown: the browser says the request comes from this origin,
// or from the person (a typed address, a bookmark).
func sameOriginShown(r *http.Request) bool {
	site := r.Header.Get("Sec-Fetch-Site")
	return (site == "same-origin" || site == "none") && !crossSite(r)
}

type logoutData struct {
	Site, Endpoints, Next string
}

// logoutPage asks a browser to confirm a sign-out that a GET asked for.
func (ss *selfService) logoutPage(w http.ResponseWriter, r *http.Request) error {
	htmlHeaders(w)
	// same-origin: the sign-out form must carry this origin (see renderSessions).
	w.Header().Set("Referrer-Policy", "same-origin")
	w.WriteHeader(http.StatusOK)
	return renderPage(w, pageLogout, logoutData{
		Site: siteLabel(ss.baseURL, r), Endpoints: ss.endpoints, Next: safeNext(r.URL.Query().Get("next")),
	})
}

func wantsJSON(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "application/json")
}
