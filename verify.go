package sessionauth

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/sessionauth/caddy-sessionauth/signature"
)

// forwardAuth is the forward-auth part (SPEC 16): it answers other
// proxies at {endpoints}/verify. nil unless forward_auth.
type forwardAuth struct {
	cookies      *cookieRules
	cfg          *ForwardAuth
	baseURL      string
	cookie       *CookieConfig
	headerPrefix string
	logger       *zap.Logger
	metrics      *metrics
	now          func() time.Time
	host         forwardHost
	// identify hands a's valid session to what comes after the proxy,
	// on r's headers, as the handler does for its upstream.
	identify func(r *http.Request, a auth) *identity
}

// forwardHost is what forward auth takes from the handler.
type forwardHost interface {
	authenticateVouched(r *http.Request) auth
	refuse(w http.ResponseWriter, r *http.Request, err error) error
	loginURL() string
}

func newForwardAuth(h *Handler) *forwardAuth {
	if h.ForwardAuth == nil {
		return nil
	}
	return &forwardAuth{cookies: h.cookies, cfg: h.ForwardAuth, baseURL: h.BaseURL, cookie: h.Cookie, headerPrefix: h.headers.prefix,
		logger: h.logger, metrics: h.metrics, now: h.now, host: h,
		identify: func(r *http.Request, a auth) *identity {
			id := &identity{h: h, sess: a.sess}
			id.risk = h.forwardIdentity(r, a)
			return id
		}}
}

// serveVerify answers {endpoints}/verify for another proxy in front of
// another app (SPEC 16): is the original request's session valid, and
// who is it? The original request is rebuilt from the proxy's headers
// and goes through the same checks as a request through the gateway
// (authenticateVouched: touch, IP change, risk, guess_rate, audit), so
// the proxy's app is protected as the gateway's own upstream is.
//
// The proxy calls with any method (nginx's auth_request keeps the
// original one); nothing here reads a body.
func (f *forwardAuth) serveVerify(w http.ResponseWriter, r *http.Request) error {
	if f == nil {
		return writeJSON(w, http.StatusNotFound, errorBody{"not_found"})
	}
	q, status401, err := f.query(r.URL.Query())
	if err != nil {
		return f.bad(w, r, "bad_query", err)
	}
	orig, err := originalRequest(r)
	if err != nil {
		return f.bad(w, r, "bad_original_request", err)
	}
	a := f.host.authenticateVouched(orig)
	if a.err != nil {
		return f.host.refuse(w, orig, a.err)
	}
	if a.sess == nil {
		f.metrics.request(a.outcome)
		return f.unauthenticated(w, orig, a, status401)
	}
	f.metrics.request(outcomeAuthenticated)
	// The client's own identity headers went at the top of ServeHTTP;
	// what is under the prefix now is the gateway's, signed for the
	// original request.
	id := f.identify(orig, a)
	if q != nil {
		if failed, _ := q.failing(id, f.now()); failed != "" {
			q.denied(orig, id, failed, false, "request refused by a rule of the verify request")
			return answer(w, orig, problemVerifyForbidden)
		}
	}
	out := w.Header()
	for name, vals := range orig.Header {
		if signature.HasPrefix(name, f.headerPrefix) {
			out[name] = vals
		}
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

var problemVerifyForbidden = problem{http.StatusForbidden, "forbidden",
	"You don't have access to this page",
	"You are signed in, but this page is not open to your account. To use another account, sign out on the sign-in site first."}

// unauthenticated answers a proxy whose request has no valid
// session: a browser navigation is sent to the gateway's sign-in with the
// original absolute URL as next (302, or 401 with that Location for
// nginx, whose auth_request takes no redirect); anything else gets 401.
func (f *forwardAuth) unauthenticated(w http.ResponseWriter, orig *http.Request, a auth, status401 bool) error {
	if a.clearCookie && f.cookie.Domain != "" {
		// Only a cookie on the parent domain is the gateway's on the
		// app's host; a host-only one there would be the app's own.
		http.SetCookie(w, f.cookies.sessionCookie(orig, "", -1))
	}
	if !browserNavigation(orig) {
		return writeJSON(w, http.StatusUnauthorized, errorBody{"unauthenticated"})
	}
	loc := f.baseURL + f.host.loginURL() + "?next=" + url.QueryEscape(absoluteURL(orig))
	if a.ended != "" {
		loc += "&" + sessionEndedParam + "=" + url.QueryEscape(a.ended)
	}
	w.Header().Set("Location", loc)
	if status401 {
		return writeJSON(w, http.StatusUnauthorized, errorBody{"unauthenticated"})
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusFound)
	return nil
}

// query reads the rules and options the proxy put in the verify
// URL: roles, users, max_age, no_risk (as session_require reads them,
// lists comma-separated) and status=401. An unknown parameter is an
// error: a mistyped rule must not let everyone in.
func (f *forwardAuth) query(v url.Values) (q *Require, status401 bool, err error) {
	rule := &Require{logger: f.logger}
	given := false
	list := func(vals []string) []string {
		var out []string
		for _, val := range vals {
			for item := range strings.SplitSeq(val, ",") {
				out = append(out, strings.TrimSpace(item))
			}
		}
		return out
	}
	for key, vals := range v {
		switch key {
		case "roles":
			rule.Roles = append(rule.Roles, list(vals)...)
		case "users":
			for _, u := range list(vals) {
				rule.Users = append(rule.Users, userIDOf(u))
			}
		case "max_age":
			if len(vals) != 1 {
				return nil, false, fmt.Errorf("max_age given %d times", len(vals))
			}
			d, err := parseDuration(vals[0])
			if err != nil || d <= 0 {
				return nil, false, fmt.Errorf("max_age %q must be a positive duration such as 10m", vals[0])
			}
			rule.MaxAge = caddy.Duration(d)
		case "no_risk":
			flags := []string{}
			for _, f := range list(vals) {
				if f != "" {
					flags = append(flags, f)
				}
			}
			rule.NoRisk = &flags
		case "status":
			if len(vals) != 1 || vals[0] != "401" {
				return nil, false, fmt.Errorf("status %q: the only one is 401 (for nginx)", strings.Join(vals, ","))
			}
			status401 = true
			continue
		default:
			return nil, false, fmt.Errorf("unknown parameter %q (roles, users, max_age, no_risk, status)", key)
		}
		given = true
	}
	if !given {
		return nil, status401, nil
	}
	if err := rule.check(); err != nil {
		return nil, false, err
	}
	return rule, status401, nil
}

// originalRequest is the request the proxy asks about, as a copy of r
// (its cookies, Authorization and client address) with the method, Host
// and URL that the proxy's headers give: X-Original-URL and
// X-Original-Method (nginx), or X-Forwarded-Proto, -Host, -Uri and
// -Method (Traefik, Caddy). An https original is marked as such, so the
// cookie read is the one the browser sent there (secure auto names it
// by the scheme).
func originalRequest(r *http.Request) (*http.Request, error) {
	method := r.Method
	var u *url.URL
	rawURL, forwardedURI := r.Header.Get("X-Original-URL"), r.Header.Get("X-Forwarded-Uri")
	switch {
	case rawURL != "" && forwardedURI != "":
		return nil, fmt.Errorf("both X-Original-URL and X-Forwarded-Uri are given: the proxy must send one shape")
	case rawURL != "":
		var err error
		u, err = url.Parse(rawURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.User != nil || u.Opaque != "" ||
			!validHost.MatchString(u.Host) || (u.Path != "" && !strings.HasPrefix(u.Path, "/")) {
			return nil, fmt.Errorf("X-Original-URL %q must be an absolute http(s) URL", sanitise(rawURL, 256))
		}
		if m := r.Header.Get("X-Original-Method"); m != "" {
			method = m
		}
	case forwardedURI != "":
		proto, host := strings.ToLower(r.Header.Get("X-Forwarded-Proto")), r.Header.Get("X-Forwarded-Host")
		if proto != "http" && proto != "https" {
			return nil, fmt.Errorf("X-Forwarded-Proto %q must be http or https", sanitise(proto, 64))
		}
		if !validHost.MatchString(host) {
			return nil, fmt.Errorf("X-Forwarded-Host %q must be one host[:port]", sanitise(host, 256))
		}
		ref, err := url.ParseRequestURI(forwardedURI)
		if err != nil || !strings.HasPrefix(forwardedURI, "/") || ref.Host != "" {
			return nil, fmt.Errorf("X-Forwarded-Uri %q must be a path with an optional query", sanitise(forwardedURI, 256))
		}
		u = &url.URL{Scheme: proto, Host: host, Path: ref.Path, RawPath: ref.RawPath, RawQuery: ref.RawQuery}
		if m := r.Header.Get("X-Forwarded-Method"); m != "" {
			method = m
		}
	default:
		return nil, fmt.Errorf("the original request is missing: send X-Original-URL (nginx) or X-Forwarded-Proto, -Host and -Uri (Traefik, Caddy)")
	}
	if !validMethod(method) {
		return nil, fmt.Errorf("method %q is not an HTTP method", sanitise(method, 32))
	}
	if u.Path == "" {
		u.Path = "/"
	}
	u.Fragment, u.RawFragment = "", ""
	orig := r.Clone(r.Context())
	orig.Method, orig.Host, orig.URL, orig.RequestURI = method, u.Host, u, u.RequestURI()
	orig.TLS = nil
	if u.Scheme == "https" {
		orig.TLS = tlsPlaceholder
	}
	return orig, nil
}

// validMethod: an HTTP token of sane length.
func validMethod(m string) bool {
	if m == "" || len(m) > 32 {
		return false
	}
	for _, c := range m {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", c)) {
			return false
		}
	}
	return true
}

// absoluteURL is what the browser asked the proxy for, whole.
func absoluteURL(orig *http.Request) string {
	scheme := "http"
	if orig.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + orig.Host + orig.URL.RequestURI()
}

// bad answers a verify request the gateway cannot read: the
// proxy's configuration is at fault, so the log says what to fix.
func (f *forwardAuth) bad(w http.ResponseWriter, r *http.Request, code string, err error) error {
	if c := f.logger.Check(zap.WarnLevel, "verify request refused: fix the proxy's configuration"); c != nil {
		c.Write(zap.String("error", err.Error()), zap.String("ip_address", clientIP(r)))
	}
	return writeJSON(w, http.StatusBadRequest, verifyError{Error: code, Detail: err.Error()})
}

// verifyError is a 400's body: a code, and for the operator what is wrong.
type verifyError struct {
	Error  string `json:"error"`
	Detail string `json:"detail"`
}
