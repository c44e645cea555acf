// Package signature signs and verifies the identity headers session_auth
// sends upstream (X-Auth-Signature). Upstreams import it to check that a
// request's identity came from the gateway; it depends on nothing but the
// standard library.
//
// The signature is "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, canonical)>"
// where canonical is, joined by "\n": the method, the escaped path (no
// query), t, then "lower(name):value" for every other header under the
// prefix, sorted by lower-cased name.
package signature

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// DefaultPrefix is session_auth's default header prefix.
const DefaultPrefix = "X-Auth-"

// Errors from Verify.
var (
	ErrMissing   = errors.New("signature: no signature header")
	ErrMalformed = errors.New("signature: malformed signature header")
	ErrExpired   = errors.New("signature: timestamp outside the allowed window")
	ErrMismatch  = errors.New("signature: does not match")
)

// Canonical is the string that is signed.
func Canonical(method, escapedPath string, t int64, hdr http.Header, prefix string) string {
	sigName := strings.ToLower(prefix + "Signature")
	lp := strings.ToLower(prefix)
	var lines []string
	for name, values := range hdr {
		l := strings.ToLower(name)
		if !strings.HasPrefix(l, lp) || l == sigName {
			continue
		}
		lines = append(lines, l+":"+strings.Join(values, ","))
	}
	slices.Sort(lines)
	return method + "\n" + escapedPath + "\n" + strconv.FormatInt(t, 10) + "\n" + strings.Join(lines, "\n")
}

// Value computes the header value for canonical at t.
func Value(secret []byte, t int64, canonical string) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(canonical))
	return "t=" + strconv.FormatInt(t, 10) + ",v1=" + hex.EncodeToString(mac.Sum(nil))
}

// Sign sets the signature header on hdr for a request with method and
// escaped path at time now.
func Sign(hdr http.Header, secret []byte, method, escapedPath, prefix string, now time.Time) {
	t := now.Unix()
	hdr.Set(prefix+"Signature", Value(secret, t, Canonical(method, escapedPath, t, hdr, prefix)))
}

// Verify checks r's identity headers under DefaultPrefix against secret,
// accepting a timestamp at most maxAge from now either way.
func Verify(r *http.Request, secret []byte, maxAge time.Duration) error {
	return VerifyPrefix(r, secret, maxAge, DefaultPrefix, time.Now())
}

// VerifyPrefix is Verify for another header prefix and clock.
func VerifyPrefix(r *http.Request, secret []byte, maxAge time.Duration, prefix string, now time.Time) error {
	v := r.Header.Get(prefix + "Signature")
	if v == "" {
		return ErrMissing
	}
	ts, mac, ok := strings.Cut(v, ",")
	ts, okT := strings.CutPrefix(ts, "t=")
	mac, okV := strings.CutPrefix(mac, "v1=")
	if !ok || !okT || !okV {
		return ErrMalformed
	}
	t, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return ErrMalformed
	}
	got, err := hex.DecodeString(mac)
	if err != nil || len(got) != sha256.Size {
		return ErrMalformed
	}
	if d := now.Sub(time.Unix(t, 0)); d > maxAge || d < -maxAge {
		return fmt.Errorf("%w (%s)", ErrExpired, d.Round(time.Second))
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(Canonical(r.Method, r.URL.EscapedPath(), t, r.Header, prefix)))
	if !hmac.Equal(got, m.Sum(nil)) {
		return ErrMismatch
	}
	return nil
}
