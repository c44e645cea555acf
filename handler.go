package sessionauth

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/sessionauth/caddy-sessionauth/session"
	"github.com/sessionauth/caddy-sessionauth/signature"
)

// Request outcomes, the label values of the requests metric.
const (
	outcomeAuthenticated   = "authenticated"
	outcomeAnonymous       = "anonymous"
	outcomeUnauthenticated = "unauthenticated"
	outcomeExpired         = "expired"
	outcomeRevoked         = "revoked"
	outcomeInvalid         = "invalid"
	outcomeStoreError      = "store_error"
)

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	// Before anything else: no identity header from the client survives,
	// on any path, with a session or without, and none the handler sets
	// can be removed by the client (Connection) or added to (trailers).
	h.headers.stripIdentity(r)

	clean, plain := requestPath(r)
	if pathUnder(clean, h.Endpoints) {
		return h.routes.serve(w, r, strings.TrimPrefix(clean, h.Endpoints))
	}
	if h.isLogin(clean, plain) {
		if crossSiteSubresource(r) {
			return crossSiteAttempt(h.logger, w, r)
		}
		if r.Method == http.MethodPost {
			if err := h.rateLimit(r, limitLogin, clientKey(clientIP(r)), "", h.LoginRate); err != nil {
				return h.refuse(w, r, err)
			}
		}
		// The interceptor reads the cookies (fixation, device) from its
		// own copy of the request; the upstream gets them stripped.
		iw := &interceptor{ho: h.handoff, r: r.Clone(r.Context()), login: true}
		iw.ResponseWriter = w
		h.cookies.stripOwnCookies(r)
		// A sign-in must stay reachable whatever rules follow.
		r = withIdentity(r, &identity{h: h, login: true})
		return iw.finish(next.ServeHTTP(iw, r))
	}

	a := h.authenticateVouched(r)
	if a.err != nil {
		return h.refuse(w, r, a.err)
	}
	id := &identity{h: h}
	if a.sess == nil {
		if !h.Optional {
			return h.noSession(w, r, a)
		}
		h.metrics.request(outcomeAnonymous)
	} else {
		h.metrics.request(outcomeAuthenticated)
		id.sess, id.risk = a.sess, h.forwardIdentity(r, a)
	}
	r = withIdentity(r, id)
	if done, err := h.refusedByReading(w, r, id); done {
		return err
	}
	h.cookies.stripOwnCookies(r)
	h.tokens.stripBearer(r)
	if a.sess != nil && isUpgrade(r) {
		var served func()
		w, r, served = h.trackUpgrade(w, r, a.sess)
		defer served()
	}
	iw := &interceptor{ho: h.handoff, r: r, sess: a.sess}
	iw.ResponseWriter = w
	return iw.finish(next.ServeHTTP(iw, r))
}

// forwardIdentity puts the valid session of a on r's headers for what
// comes after the gateway (the upstream, or the proxy that asked
// /verify) and answers the risk flags it forwarded.
func (h *Handler) forwardIdentity(r *http.Request, a auth) string {
	if a.degraded {
		r.Header.Set(h.headers.degraded, "true")
	}
	if a.access != "" {
		// Before setIdentity: X-Auth-Signature covers it too.
		r.Header.Set(h.headers.accessToken, a.access)
	}
	return h.setIdentity(r, a.sess)
}

// refuse answers a request the store could not serve, or a client over
// a rate limit.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, err error) error {
	var rl errRateLimited
	if errors.As(err, &rl) {
		return tooMany(w, r, err)
	}
	h.metrics.request(outcomeStoreError)
	return h.storeUnavailable(w, r, err)
}

func eventOf(s *session.Session, typ string, at time.Time, reason string) session.Event {
	e := session.LoginEvent(s)
	e.Type, e.At, e.Reason = typ, at.UTC(), reason
	return e
}

// countryChanged: the session is now seen in another country than the
// one it was created in (both known).
func countryChanged(s *session.Session) bool {
	return s.Country != "" && s.LoginCountry != "" && s.Country != s.LoginCountry
}

// forget drops ended sessions from what this handler remembers (grace and
// cache); other gateways hear of it over the store's revocation channel.
func (h *Handler) forget(ids ...string) {
	for _, id := range ids {
		h.grace.forget(id)
	}
	h.cache.drop(ids...)
	sockets.closeSessions(ids...)
}

// clientIP is the client address as Caddy sees it (trusted_proxies
// honoured), IPv4-mapped IPv6 shown as IPv4.
func clientIP(r *http.Request) string {
	s, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	if s == "" {
		s = r.RemoteAddr
		if host, _, err := net.SplitHostPort(s); err == nil {
			s = host
		}
	}
	if ip, err := netip.ParseAddr(s); err == nil {
		if ip.Is4() {
			return s // ParseAddr takes only the canonical dotted form
		}
		return ip.Unmap().WithZone("").String()
	}
	return sanitise(s, 64)
}

// setIdentity hands the proven identity to the upstream as headers and to
// Caddy as placeholders ({http.auth.user.id} puts user_id in access logs).
// It returns the risk flags it forwarded.
func (h *Handler) setIdentity(r *http.Request, s *session.Session) string {
	hn, hdr := &h.headers, r.Header
	ip := clientIP(r)
	ipChanged := s.LoginIP != "" && ip != s.LoginIP
	risk := h.riskOf(s, ip)
	created := s.CreatedAt.UTC().Format(time.RFC3339)
	changed := "false"
	if ipChanged {
		changed = "true"
	}

	vals := make([]string, 0, 20) // one allocation for all the headers' values
	set := func(name, v string) {
		if v != "" {
			vals = append(vals, v)
			hdr[name] = vals[len(vals)-1 : len(vals) : len(vals)]
		}
	}
	set(hn.user, s.UserID)
	set(hn.email, s.Email)
	set(hn.name, s.Name)
	set(hn.roles, s.Roles)
	set(hn.session, s.ID)
	set(hn.created, created)
	set(hn.ip, ip)
	set(hn.loginIP, s.LoginIP)
	set(hn.ipChanged, changed)
	set(hn.device, s.Device)
	set(hn.deviceType, s.DeviceType)
	set(hn.browser, s.Browser)
	set(hn.os, s.OS)
	set(hn.country, s.Country)
	set(hn.city, s.City)
	set(hn.risk, risk)
	set(hn.method, s.AuthMethod)
	authAt := created
	if !s.AuthenticatedAt.IsZero() && !s.AuthenticatedAt.Equal(s.CreatedAt) {
		authAt = s.AuthenticatedAt.UTC().Format(time.RFC3339)
	}
	set(hn.authAt, authAt)
	if h.SignHeaders != "" {
		signature.Sign(hdr, []byte(h.SignHeaders), r.Method, r.Host, r.URL.EscapedPath(), r.URL.RawQuery, h.HeaderPrefix, h.now())
	}

	setPlaceholders(r, s, ip, changed, risk, created)
	return risk
}

// riskOf is the flags s carries on a request from ip: those kept on the
// session and, measured from the last step-up's place if any (a step-up
// answers them; X-Auth-IP-Changed still tells the sign-in's), ip-changed
// and country-changed. A token carries only its kept flags, its maker's:
// it is made to be used from elsewhere.
func (h *Handler) riskOf(s *session.Session, ip string) string {
	risk := s.Risk
	if s.IsToken() {
		return risk
	}
	baseIP, baseCountry := s.RiskBaseline()
	if baseIP != "" && ip != baseIP && h.IPChange != "allow" {
		risk = session.AddFlag(risk, session.FlagIPChanged)
	}
	if s.Country != "" && baseCountry != "" && s.Country != baseCountry && h.CountryChange != "allow" {
		risk = session.AddFlag(risk, session.FlagCountryChanged)
	}
	return risk
}

// setPlaceholders provides {http.auth.user.*} and {http.auth.session.*}:
// one lazy provider rather than a value per key, since most requests read
// none of them but the access log's user id.
func setPlaceholders(r *http.Request, s *session.Session, ip, changed, risk, created string) {
	repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if !ok {
		return
	}
	repl.Map(func(key string) (any, bool) {
		if k, ok := strings.CutPrefix(key, "http.auth.user."); ok {
			switch k {
			case "id":
				return s.UserID, true
			case "email":
				return s.Email, true
			case "name":
				return s.Name, true
			case "roles":
				return s.Roles, true
			}
			return nil, false
		}
		k, ok := strings.CutPrefix(key, "http.auth.session.")
		if !ok {
			return nil, false
		}
		switch k {
		case "id":
			return s.ID, true
		case "device":
			return s.Device, true
		case "device_type":
			return s.DeviceType, true
		case "browser":
			return s.Browser, true
		case "os":
			return s.OS, true
		case "ip":
			return ip, true
		case "login_ip":
			return s.LoginIP, true
		case "ip_changed":
			return changed, true
		case "country":
			return s.Country, true
		case "city":
			return s.City, true
		case "risk":
			return risk, true
		case "created_at":
			return created, true
		case "last_active_at":
			return s.LastActiveAt.UTC().Format(time.RFC3339), true
		}
		return nil, false
	})
}

// noSession is the one answer to a request that needs a session and has
// none, on every path (the upstream's, the sessions page, the self-service
// forms): counted, a spent cookie cleared, then the configured answer.
func (h *Handler) noSession(w http.ResponseWriter, r *http.Request, a auth) error {
	h.metrics.request(a.outcome)
	return h.unauthenticated(w, r, a.clearCookie, a.ended)
}

// unauthenticated answers a request that needs a session and has none.
// The ?next= it sends the browser with passes the logout's safe-next rule:
// a path the login page can redirect to without leaving the site. When
// the cookie named a session that has ended, ?session_ended=<end_reason>
// lets the login page say why ("You were signed out from another device").
func (h *Handler) unauthenticated(w http.ResponseWriter, r *http.Request, clearCookie bool, ended string) error {
	if clearCookie {
		http.SetCookie(w, h.cookies.sessionCookie(r, "", -1))
	}
	u := h.Unauthenticated
	if u != nil && u.Status != 0 {
		return writeJSON(w, u.Status, errorBody{"unauthenticated"})
	}
	if (u != nil && u.Redirect) || browserNavigation(r) {
		target := h.loginURL()
		if u != nil && u.URL != "" {
			target = u.URL
		}
		sep := "?"
		if strings.Contains(target, "?") {
			sep = "&"
		}
		loc := target + sep + "next=" + url.QueryEscape(safeNext(originalURI(r)))
		if ended != "" {
			loc += "&" + sessionEndedParam + "=" + url.QueryEscape(ended)
		}
		w.Header().Set("Location", loc)
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusSeeOther)
		return nil
	}
	return writeJSON(w, http.StatusUnauthorized, errorBody{"unauthenticated"})
}

// sessionEndedParam is the query parameter of the sign-in redirect that
// says why the browser's session ended (a SPEC end_reason).
const sessionEndedParam = "session_ended"

// loginURL is where a browser signs in: the gateway's sign-in page when
// sign_in is configured, else the first login path, without a trailing *.
func (h *Handler) loginURL() string {
	if h.SignIn != nil {
		return h.Endpoints + "/sign-in"
	}
	return h.logins[0].path
}

// browserNavigation: a GET or HEAD that accepts HTML.
func browserNavigation(r *http.Request) bool {
	return (r.Method == http.MethodGet || r.Method == http.MethodHead) &&
		strings.Contains(r.Header.Get("Accept"), "text/html")
}

// originalURI is the request URI before any rewrite, what the user asked for.
func originalURI(r *http.Request) string {
	if or, ok := r.Context().Value(caddyhttp.OriginalRequestCtxKey).(http.Request); ok && or.URL != nil {
		return or.URL.RequestURI()
	}
	return r.URL.RequestURI()
}

// storeUnavailable answers 503: never anonymous, never an identity.
func (h *Handler) storeUnavailable(w http.ResponseWriter, r *http.Request, err error) error {
	if c := h.log(r.Context()).Check(zap.ErrorLevel, "session store unavailable"); c != nil {
		c.Write(zap.String("store", h.Store.describe()), zap.Error(err), zap.Bool("timeout", errors.Is(err, context.DeadlineExceeded)))
	}
	w.Header().Set("Retry-After", retryAfter)
	return answer(w, r, problemStoreUnavailable)
}

const retryAfter = "5"
