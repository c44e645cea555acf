package signature

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func signedRequest(now time.Time) *http.Request {
	r := httptest.NewRequest("GET", "/a%2Fb/c?x=1", nil)
	r.Header.Set("X-Auth-User", "alice")
	r.Header.Set("X-Auth-Roles", "admin,dev")
	r.Header.Set("Accept", "text/html")
	Sign(r.Header, []byte("k"), r.Method, r.URL.EscapedPath(), DefaultPrefix, now)
	return r
}

func TestCanonicalIsTheSpecLayout(t *testing.T) {
	hdr := http.Header{"X-Auth-User": {"alice"}, "X-Auth-Email": {"a@x"}, "Accept": {"*/*"}, "X-Auth-Signature": {"old"}}
	got := Canonical("POST", "/p%20q", 1700000000, hdr, DefaultPrefix)
	want := "POST\n/p%20q\n1700000000\nx-auth-email:a@x\nx-auth-user:alice"
	if got != want {
		t.Fatalf("canonical\n got %q\nwant %q", got, want)
	}
	// The same HMAC, computed independently:
	// printf 'POST\n/p%20q\n1700000000\nx-auth-email:a@x\nx-auth-user:alice' | openssl dgst -sha256 -hmac secret
	if v := Value([]byte("secret"), 1700000000, want); v != "t=1700000000,v1=dd6e2cad05e04357aeaa6d20f1fcb29051a90f24434df94c5aa3311ad2fb4ff5" {
		t.Fatalf("value %q", v)
	}
}

func TestVerify(t *testing.T) {
	now := time.Unix(1800000000, 0)
	if err := VerifyPrefix(signedRequest(now), []byte("k"), time.Minute, DefaultPrefix, now.Add(30*time.Second)); err != nil {
		t.Fatalf("good signature: %v", err)
	}
	cases := map[string]struct {
		mut  func(r *http.Request)
		want error
	}{
		"tampered user":    {func(r *http.Request) { r.Header.Set("X-Auth-User", "mallory") }, ErrMismatch},
		"added header":     {func(r *http.Request) { r.Header.Set("X-Auth-Admin", "true") }, ErrMismatch},
		"removed header":   {func(r *http.Request) { r.Header.Del("X-Auth-Roles") }, ErrMismatch},
		"other path":       {func(r *http.Request) { r.URL.Path, r.URL.RawPath = "/admin", "" }, ErrMismatch},
		"other method":     {func(r *http.Request) { r.Method = "POST" }, ErrMismatch},
		"missing":          {func(r *http.Request) { r.Header.Del("X-Auth-Signature") }, ErrMissing},
		"garbage":          {func(r *http.Request) { r.Header.Set("X-Auth-Signature", "t=1,v1=zz") }, ErrMalformed},
		"short mac":        {func(r *http.Request) { r.Header.Set("X-Auth-Signature", "t=1800000000,v1=abcd") }, ErrMalformed},
		"no t":             {func(r *http.Request) { r.Header.Set("X-Auth-Signature", "v1=abcd") }, ErrMalformed},
		"query is ignored": {func(r *http.Request) { r.URL.RawQuery = "y=2" }, nil},
	}
	for name, tc := range cases {
		r := signedRequest(now)
		tc.mut(r)
		if err := VerifyPrefix(r, []byte("k"), time.Minute, DefaultPrefix, now); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
	if err := VerifyPrefix(signedRequest(now), []byte("other"), time.Minute, DefaultPrefix, now); !errors.Is(err, ErrMismatch) {
		t.Errorf("wrong secret: %v", err)
	}
	if err := VerifyPrefix(signedRequest(now), []byte("k"), time.Minute, DefaultPrefix, now.Add(2*time.Minute)); !errors.Is(err, ErrExpired) {
		t.Errorf("old: %v", err)
	}
	if err := VerifyPrefix(signedRequest(now), []byte("k"), time.Minute, DefaultPrefix, now.Add(-2*time.Minute)); !errors.Is(err, ErrExpired) {
		t.Errorf("future: %v", err)
	}
}
