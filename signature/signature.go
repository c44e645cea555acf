// Package signature signs and verifies the identity headers session_auth
// sends upstream (X-Auth-Signature). Upstreams import it to check that a
// request's identity came from the gateway; it depends on nothing but the
// standard library.
//
// The signature is "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, canonical)>"
// where canonical is these lines joined by "\n" (no trailing newline):
//
//  1. the method;
//  2. the Host;
//  3. the escaped path;
//  4. the raw query, without the "?" (an empty line when there is none);
//  5. t;
//  6. then "lower(name):value" for every other header under the prefix,
//     sorted by the lower-cased name alone (so "x-auth-ip" comes before
//     "x-auth-ip-changed"; two fields whose names lower-case alike are
//     never signed, so a request that has them fails whatever their order).
//
// A name is under the prefix when it starts with it compared without case
// and with '_' and '.' read as '-', so an added "X_Auth_Roles" is part of
// the canonical form and fails verification. "Every other" leaves out only
// the signature header itself, spelt prefix+"Signature" in any case. A header
// with several values is one line, its values joined by ","; the gateway
// never signs one.
//
// Host and URI are as session_auth saw them: rewrites the upstream should
// verify go before session_auth.
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

// HasPrefix reports whether the header name is under prefix: compared
// without case, with '_' and '.' read as '-' on both sides. It does not
// allocate.
func HasPrefix(name, prefix string) bool {
	if len(name) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		if fold(name[i]) != fold(prefix[i]) {
			return false
		}
	}
	return true
}

func fold(c byte) byte {
	switch {
	case c == '_' || c == '.':
		return '-'
	case c >= 'A' && c <= 'Z':
		return c + 'a' - 'A'
	}
	return c
}

// Canonical is the string that is signed, for a request with method, Host,
// escaped path and raw query, at time t.
func Canonical(method, host, escapedPath, rawQuery string, t int64, hdr http.Header, prefix string) string {
	sigName := prefix + "Signature"
	type line struct{ name, text string }
	var lines []line
	for name, values := range hdr {
		if !HasPrefix(name, prefix) || strings.EqualFold(name, sigName) {
			continue
		}
		l := strings.ToLower(name)
		lines = append(lines, line{l, l + ":" + strings.Join(values, ",")})
	}
	slices.SortStableFunc(lines, func(a, b line) int { return strings.Compare(a.name, b.name) })
	var b strings.Builder
	for _, s := range []string{method, host, escapedPath, rawQuery} {
		b.WriteString(s)
		b.WriteByte('\n')
	}
	b.WriteString(strconv.FormatInt(t, 10))
	for _, l := range lines {
		b.WriteByte('\n')
		b.WriteString(l.text)
	}
	return b.String()
}

// Value computes the header value for canonical at t.
func Value(secret []byte, t int64, canonical string) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(canonical))
	return "t=" + strconv.FormatInt(t, 10) + ",v1=" + hex.EncodeToString(mac.Sum(nil))
}

// Sign sets the signature header on hdr for a request with method, Host,
// escaped path and raw query at time now.
func Sign(hdr http.Header, secret []byte, method, host, escapedPath, rawQuery, prefix string, now time.Time) {
	t := now.Unix()
	hdr.Set(prefix+"Signature", Value(secret, t, Canonical(method, host, escapedPath, rawQuery, t, hdr, prefix)))
}

// Verify checks r's identity headers under DefaultPrefix against secret,
// accepting a timestamp at most maxAge from now either way. It reads the
// Host, escaped path and raw query from r.
func Verify(r *http.Request, secret []byte, maxAge time.Duration) error {
	return VerifyPrefix(r, secret, maxAge, DefaultPrefix, time.Now())
}

// VerifyPrefix is Verify for another header prefix and clock.
func VerifyPrefix(r *http.Request, secret []byte, maxAge time.Duration, prefix string, now time.Time) error {
	vs := r.Header.Values(prefix + "Signature")
	if len(vs) == 0 || vs[0] == "" {
		return ErrMissing
	}
	if len(vs) > 1 {
		return ErrMalformed
	}
	ts, mac, ok := strings.Cut(vs[0], ",")
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
	m.Write([]byte(Canonical(r.Method, r.Host, r.URL.EscapedPath(), r.URL.RawQuery, t, r.Header, prefix)))
	if !hmac.Equal(got, m.Sum(nil)) {
		return ErrMismatch
	}
	return nil
}
