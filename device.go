package sessionauth

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"time"
)

// The device cookie tells a known browser from a new one: a random id,
// HttpOnly, long-lived, kept across sign-outs.
const (
	deviceCookieSuffix = "_device"
	deviceCookieMaxAge = 400 * 24 * time.Hour // what browsers allow at most
	deviceIDLen        = 32
)

func (cr *cookieRules) deviceCookieName(r *http.Request) string {
	return cr.cookieName(r) + deviceCookieSuffix
}

// deviceID returns the request's device id, or a new one and the cookie
// that sets it.
func (cr *cookieRules) deviceID(r *http.Request) (string, *http.Cookie) {
	if c, err := r.Cookie(cr.deviceCookieName(r)); err == nil && validDeviceID(c.Value) {
		return c.Value, nil
	}
	var b [deviceIDLen / 2]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", nil
	}
	id := hex.EncodeToString(b[:])
	c := cr.sessionCookie(r, id, deviceCookieMaxAge)
	c.Name = cr.deviceCookieName(r)
	c.SameSite = http.SameSiteLaxMode
	return id, c
}

func validDeviceID(s string) bool {
	if len(s) != deviceIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
