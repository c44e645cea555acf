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

func (h *Handler) signedOutCookie(r *http.Request, maxAge time.Duration) *http.Cookie {
	c := h.sessionCookie(r, "1", maxAge)
	c.Name = h.cookieName(r) + signedOutCookieSuffix
	return c
}

// flagSignedOut sets the flag on the sign-out's answer.
func (h *Handler) flagSignedOut(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, h.signedOutCookie(r, signedOutMaxAge))
}

// takeSignedOut reports whether the browser signed out a moment ago, and
// clears the flag.
func (h *Handler) takeSignedOut(w http.ResponseWriter, r *http.Request) bool {
	c, err := r.Cookie(h.cookieName(r) + signedOutCookieSuffix)
	if err != nil || c.Value != "1" {
		return false
	}
	http.SetCookie(w, h.signedOutCookie(r, -1))
	return true
}
