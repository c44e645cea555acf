package sessionauth

import (
	"crypto/tls"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/sessionauth/caddy-sessionauth/session"
)

// cookieRules are the session cookie's name and attributes (the cookie
// option) and the cookies named after it: the device's, the sign-in
// form's, the signed-out flag and the OIDC binding.
type cookieRules struct {
	cfg     *CookieConfig
	siteTLS bool // the server serves HTTPS: Secure under secure auto, for siteCookie
}

// secure reports whether the session cookie is Secure for this request.
func (cr *cookieRules) secure(r *http.Request) bool {
	switch cr.cfg.Secure {
	case "always":
		return true
	case "never":
		return false
	}
	return r.TLS != nil
}

// cookieName follows the SPEC: an explicit name, else the strongest
// prefix the cookie qualifies for.
func (cr *cookieRules) cookieName(r *http.Request) string {
	if cr.cfg.Name != "" {
		return cr.cfg.Name
	}
	if !cr.secure(r) {
		return "session"
	}
	if cr.cfg.Domain == "" && cr.cfg.Path == "/" {
		return "__Host-session"
	}
	return "__Secure-session"
}

func (cr *cookieRules) sameSite() http.SameSite {
	switch cr.cfg.SameSite {
	case "strict":
		return http.SameSiteStrictMode
	case "none":
		return http.SameSiteNoneMode
	}
	return http.SameSiteLaxMode
}

// sessionCookie builds the Set-Cookie for value; maxAge < 0 clears it.
func (cr *cookieRules) sessionCookie(r *http.Request, value string, maxAge time.Duration) *http.Cookie {
	c := &http.Cookie{
		Name:     cr.cookieName(r),
		Value:    value,
		Path:     cr.cfg.Path,
		Domain:   cr.cfg.Domain,
		Secure:   cr.secure(r),
		HttpOnly: true,
		SameSite: cr.sameSite(),
		MaxAge:   int(maxAge / time.Second),
	}
	if maxAge < 0 {
		c.Value, c.MaxAge = "", -1 // Max-Age=0 on the wire
	}
	return c
}

// cookieTries bounds how many same-named session cookies one request makes
// the gateway check. Browsers send every cookie whose domain and path fit,
// so a sibling subdomain can toss its own "session" cookie beside the real
// one; each is tried, and the one that validates wins, unless there are
// more than this (the one left unchecked may be the victim's) or a valid
// one comes after one that failed (see authenticate).
const cookieTries = 3

// sessionCookies holds the session cookie values of a request, in the
// order the browser sent them; a fixed array so the common case of one
// cookie costs no allocation.
type sessionCookies struct {
	vals [cookieTries]string
	n    int
}

func (c *sessionCookies) values() []string { return c.vals[:c.n] }

// readCookies returns the request's session cookie values (at most
// cookieTries of them; values that cannot be ours, by their length, are
// passed over and take no place) and how many session cookies were sent,
// of any length.
func (cr *cookieRules) readCookies(r *http.Request) (cookies sessionCookies, sent int) {
	name := cr.cookieName(r)
	for _, line := range r.Header.Values("Cookie") {
		for part := range strings.SplitSeq(line, ";") {
			k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
			if !ok || k != name {
				continue
			}
			sent++
			if v = strings.Trim(v, `"`); len(v) == session.CookieLen && cookies.n < cookieTries {
				cookies.vals[cookies.n] = v
				cookies.n++
			}
		}
	}
	return cookies, sent
}

// siteCookie is the Set-Cookie this handler's site sends for value: its
// cookie name and attributes as a browser on the site would get them.
func (cr *cookieRules) siteCookie(value string, maxAge time.Duration) *http.Cookie {
	r := &http.Request{}
	if cr.siteTLS {
		r.TLS = tlsPlaceholder
	}
	return cr.sessionCookie(r, value, maxAge)
}

// tlsPlaceholder marks a synthetic request as HTTPS when the admin API
// builds the cookie a secure site would set.
var tlsPlaceholder = &tls.ConnectionState{}

// stripOwnCookies removes the gateway's cookies from the request before it
// goes upstream (the session's, the device's, and the sign-in form's and
// the OIDC binding's): the app never needs them, and a token that never
// reaches it cannot leak from its logs. Other cookies pass as sent.
func (cr *cookieRules) stripOwnCookies(r *http.Request) {
	lines := r.Header["Cookie"]
	if len(lines) == 0 {
		return
	}
	name := cr.cookieName(r)
	if !slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, name) || strings.Contains(l, oidcCookieSuffix) }) {
		return
	}
	if len(lines) == 1 && !strings.Contains(lines[0], ";") && strings.HasPrefix(lines[0], name+"=") {
		r.Header.Del("Cookie") // only ours: the common case, no allocation
		return
	}
	binding := oidcCookieName(name, cr.secure(r)) // __Host- on HTTPS, whatever name is
	own := func(k string) bool {
		rest, ok := strings.CutPrefix(k, name)
		return k == binding || ok && (rest == "" || rest == deviceCookieSuffix || rest == signInCookieSuffix || rest == oidcCookieSuffix || rest == signedOutCookieSuffix)
	}
	kept := lines[:0:0]
	for _, line := range lines {
		var parts []string
		for part := range strings.SplitSeq(line, ";") {
			k, _, _ := strings.Cut(strings.TrimSpace(part), "=")
			if !own(k) && strings.TrimSpace(part) != "" {
				parts = append(parts, strings.TrimSpace(part))
			}
		}
		if len(parts) > 0 {
			kept = append(kept, strings.Join(parts, "; "))
		}
	}
	if len(kept) == 0 {
		r.Header.Del("Cookie")
		return
	}
	r.Header["Cookie"] = kept
}
