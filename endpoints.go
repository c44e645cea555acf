package sessionauth

import (
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/sessionauth/caddy-sessionauth/session"
)

// serveEndpoint answers the gateway's own pages under `endpoints`; they
// never reach the upstream. sub is the cleaned path below the prefix.
func (h *Handler) serveEndpoint(w http.ResponseWriter, r *http.Request, sub string) error {
	w.Header().Set("Cache-Control", "no-store")
	switch sub {
	case "/me":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			return methodNotAllowed(w, "GET, HEAD")
		}
		return h.serveMe(w, r)
	case "/sessions":
		return h.serveSessions(w, r, "")
	case "/revoke":
		return h.serveRevokeLink(w, r)
	case "/sign-in":
		return h.signIn.serve(w, r)
	case "/verify":
		return h.serveVerify(w, r)
	case "/logout":
		if r.Method != http.MethodGet && r.Method != http.MethodPost {
			return methodNotAllowed(w, "GET, POST")
		}
		return h.serveLogout(w, r)
	}
	if rest, ok := strings.CutPrefix(sub, "/sign-in/"); ok {
		if crossSiteSubresource(r) {
			return h.crossSiteAttempt(w, r)
		}
		return h.serveProviderStart(w, r, rest)
	}
	if rest, ok := strings.CutPrefix(sub, "/callback/"); ok {
		return h.serveCallback(w, r, rest)
	}
	if rest, ok := strings.CutPrefix(sub, "/backchannel-logout/"); ok {
		return h.serveBackchannelLogout(w, r, rest)
	}
	if rest, ok := strings.CutPrefix(sub, "/sessions/"); ok {
		return h.serveSessions(w, r, "/"+rest)
	}
	if rest, ok := strings.CutPrefix(sub, "/tokens"); ok && (rest == "" || strings.HasPrefix(rest, "/")) {
		return h.serveTokens(w, r, rest)
	}
	return writeJSON(w, http.StatusNotFound, errorBody{"not_found"})
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

func (h *Handler) serveMe(w http.ResponseWriter, r *http.Request) error {
	a := h.authenticateVouched(r)
	if a.err != nil {
		return h.refuse(w, r, a.err)
	}
	if a.sess == nil {
		h.metrics.request(a.outcome)
		if a.clearCookie {
			http.SetCookie(w, h.sessionCookie(r, "", -1))
		}
		return writeJSON(w, http.StatusUnauthorized, errorBody{"unauthenticated"})
	}
	h.metrics.request(outcomeAuthenticated)
	s := a.sess
	h.setIdentity(r, s) // for the access log's user_id and other placeholders
	w.Header().Set("X-CSRF-Token", csrfToken(s))
	u := userJSON{ID: s.UserID, Email: s.Email, Name: s.Name}
	for _, role := range strings.Split(s.Roles, ",") {
		if role = strings.TrimSpace(role); role != "" {
			u.Roles = append(u.Roles, role)
		}
	}
	return writeJSON(w, http.StatusOK, meJSON{User: u, Session: toJSON(s, h.policy, h.now(), s.ID)})
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
func (h *Handler) crossSiteAttempt(w http.ResponseWriter, r *http.Request) error {
	if c := h.logger.Check(zap.InfoLevel, "cross-site sign-in attempt that is no navigation: refused, not counted"); c != nil {
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
func (h *Handler) serveLogout(w http.ResponseWriter, r *http.Request) error {
	if _, bearer := h.bearer(r); r.Method == http.MethodGet && !bearer && !sameOriginShown(r) {
		if !wantsPage(r) {
			return writeJSON(w, http.StatusForbidden, errorBody{"cross_site_request"})
		}
		return h.logoutPage(w, r)
	}
	if h.crossSiteRefused(r) {
		return writeJSON(w, http.StatusForbidden, errorBody{"cross_site_request"})
	}
	a := h.authenticate(r)
	if a.err != nil {
		return h.refuse(w, r, a.err)
	}
	if a.sess != nil {
		h.setIdentity(r, a.sess)
		ctx := r.Context()
		now := h.now()
		s, err := h.store.End(ctx, a.sess.ID, now, session.EndLogout, session.ActorSelf, h.policy)
		switch {
		case err == nil:
			h.sessionEnded(s, ending{reason: session.EndLogout, actor: session.ActorSelf, at: now, quiet: true})
		case !errors.Is(err, session.ErrNotFound):
			// The session is still alive: say so rather than pretend.
			return h.storeUnavailable(w, r, err)
		}
	}
	http.SetCookie(w, h.sessionCookie(r, "", -1))
	if wantsJSON(r) {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	if a.sess != nil {
		h.flagSignedOut(w, r)
	}
	next := safeNext(r.URL.Query().Get("next"))
	if a.sess != nil && a.sess.Provider != "" {
		if to := h.providerLogoutURL(r, a.sess, a.secret, next); to != "" {
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
func (h *Handler) logoutPage(w http.ResponseWriter, r *http.Request) error {
	htmlHeaders(w)
	// same-origin: the sign-out form must carry this origin (see renderSessions).
	w.Header().Set("Referrer-Policy", "same-origin")
	w.WriteHeader(http.StatusOK)
	return renderPage(w, pageLogout, logoutData{
		Site: siteLabel(h, r), Endpoints: h.Endpoints, Next: safeNext(r.URL.Query().Get("next")),
	})
}

func wantsJSON(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "application/json")
}
