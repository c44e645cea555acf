package sessionauth

import (
	"net/http"
	"time"
)

// A browser's sign-out leaves a flag cookie beside the session cookie,
// so that the sign-in page it lands on says "You signed out.": the
// sign-out's next is any page of the site, which cannot carry the
// notice itself without the gateway redirecting to URLs it builds. The
// flag holds nothing but "1", lives long enough for a provider's
// sign-out round trip, and the sign-in page clears it once shown.
const (
	signedOutCookieSuffix = "_signed_out"
	signedOutMaxAge       = 2 * time.Minute
)

func signedOutCookie(c cookieMaker, r *http.Request, maxAge time.Duration) *http.Cookie {
	out := c.sessionCookie(r, "1", maxAge)
	out.Name = c.cookieName(r) + signedOutCookieSuffix
	return out
}

// flagSignedOut sets the flag on the sign-out's answer.
func flagSignedOut(c cookieMaker, w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, signedOutCookie(c, r, signedOutMaxAge))
}

// takeSignedOut reports whether the browser signed out a moment ago, and
// clears the flag.
func (h *Handler) takeSignedOut(w http.ResponseWriter, r *http.Request) bool {
	c, err := r.Cookie(h.cookies.cookieName(r) + signedOutCookieSuffix)
	if err != nil || c.Value != "1" {
		return false
	}
	http.SetCookie(w, signedOutCookie(h.cookies, r, -1))
	return true
}

// cookieMaker makes the session cookie and its siblings (cookie.go).
type cookieMaker interface {
	sessionCookie(r *http.Request, value string, maxAge time.Duration) *http.Cookie
	cookieName(r *http.Request) string
}
