package signature

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func signedRequest(now time.Time) *http.Request {
	r := httptest.NewRequest("GET", "http://app.example.com/a%2Fb/c?q=1", nil)
	r.Header.Set("X-Auth-User", "alice")
	r.Header.Set("X-Auth-Roles", "admin,dev")
	r.Header.Set("X-Auth-Ip", "192.0.2.1")
	r.Header.Set("X-Auth-Ip-Changed", "false")
	r.Header.Set("Accept", "text/html")
	Sign(r.Header, []byte("k"), r.Method, r.Host, r.URL.EscapedPath(), r.URL.RawQuery, DefaultPrefix, now)
	return r
}

func TestCanonicalIsTheSpecLayout(t *testing.T) {
	hdr := http.Header{
		"X-Auth-User": {"alice"}, "X-Auth-Email": {"a@x"}, "Accept": {"*/*"}, "X-Auth-Signature": {"old"},
		"X-Auth-Ip-Changed": {"false"}, "X-Auth-Ip": {"192.0.2.1"},
	}
	got := Canonical("POST", "app.example.com", "/p%20q", "", 1700000000, hdr, DefaultPrefix)
	// Sorted by name: x-auth-ip before x-auth-ip-changed (sorting whole
	// lines would put "x-auth-ip-changed:" first, as '-' < ':').
	want := "POST\napp.example.com\n/p%20q\n\n1700000000\nx-auth-email:a@x\nx-auth-ip:192.0.2.1\nx-auth-ip-changed:false\nx-auth-user:alice"
	if got != want {
		t.Fatalf("canonical\n got %q\nwant %q", got, want)
	}
	// The same HMAC, computed independently:
	// printf 'POST\napp.example.com\n/p%%20q\n\n1700000000\nx-auth-email:a@x\nx-auth-ip:192.0.2.1\nx-auth-ip-changed:false\nx-auth-user:alice' | openssl dgst -sha256 -hmac secret
	if v := Value([]byte("secret"), 1700000000, want); v != "t=1700000000,v1=bf15bbe940acdbe73c042922b02162deb37a4f35ab89af63d30bfc6daea95921" {
		t.Fatalf("value %q", v)
	}
	// The query is its own line, without the "?".
	if got := Canonical("GET", "h", "/", "a=1&b=2", 5, http.Header{"X-Auth-User": {"u"}}, DefaultPrefix); got != "GET\nh\n/\na=1&b=2\n5\nx-auth-user:u" {
		t.Fatalf("with a query: %q", got)
	}
}

func TestHasPrefix(t *testing.T) {
	for name, want := range map[string]bool{
		"X-Auth-User": true, "x-auth-user": true, "X_Auth_Roles": true, "X.AUTH.roles": true, "x_auth-": true,
		"X-Auth": false, "X-Authx-User": false, "Accept": false, "": false,
	} {
		if got := HasPrefix(name, DefaultPrefix); got != want {
			t.Errorf("HasPrefix(%q) = %v", name, got)
		}
	}
	if !HasPrefix("X-Auth-User", "x_auth.") {
		t.Error("the prefix itself is folded too")
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
		"tampered user":       {func(r *http.Request) { r.Header.Set("X-Auth-User", "mallory") }, ErrMismatch},
		"added header":        {func(r *http.Request) { r.Header.Set("X-Auth-Admin", "true") }, ErrMismatch},
		"added X_Auth_Roles":  {func(r *http.Request) { r.Header["X_Auth_Roles"] = []string{"superadmin"} }, ErrMismatch},
		"added X.Auth.Roles":  {func(r *http.Request) { r.Header["X.Auth.Roles"] = []string{"superadmin"} }, ErrMismatch},
		"added x_auth_sig...": {func(r *http.Request) { r.Header["X_Auth_Signature"] = []string{"t=1,v1=00"} }, ErrMismatch},
		"second roles value":  {func(r *http.Request) { r.Header.Add("X-Auth-Roles", "superadmin") }, ErrMismatch},
		"removed header":      {func(r *http.Request) { r.Header.Del("X-Auth-Roles") }, ErrMismatch},
		"swapped ip values": {func(r *http.Request) {
			r.Header.Set("X-Auth-Ip", "false")
			r.Header.Set("X-Auth-Ip-Changed", "192.0.2.1")
		}, ErrMismatch},
		"other path":        {func(r *http.Request) { r.URL.Path, r.URL.RawPath = "/admin", "" }, ErrMismatch},
		"other method":      {func(r *http.Request) { r.Method = "POST" }, ErrMismatch},
		"replayed query":    {func(r *http.Request) { r.URL.RawQuery = "q=2&to=mallory" }, ErrMismatch},
		"dropped query":     {func(r *http.Request) { r.URL.RawQuery = "" }, ErrMismatch},
		"other host":        {func(r *http.Request) { r.Host = "evil.example.com" }, ErrMismatch},
		"non-prefix header": {func(r *http.Request) { r.Header.Set("Accept", "*/*") }, nil},
		"missing":           {func(r *http.Request) { r.Header.Del("X-Auth-Signature") }, ErrMissing},
		"two signatures":    {func(r *http.Request) { r.Header.Add("X-Auth-Signature", "t=1,v1=00") }, ErrMalformed},
		"garbage":           {func(r *http.Request) { r.Header.Set("X-Auth-Signature", "t=1,v1=zz") }, ErrMalformed},
		"short mac":         {func(r *http.Request) { r.Header.Set("X-Auth-Signature", "t=1800000000,v1=abcd") }, ErrMalformed},
		"no t":              {func(r *http.Request) { r.Header.Set("X-Auth-Signature", "v1=abcd") }, ErrMalformed},
		"query moved in path": {func(r *http.Request) {
			r.URL.RawQuery = ""
			r.URL.RawPath = "/a%2Fb/c%3Fq=1"
			r.URL.Path = "/a/b/c?q=1"
		}, ErrMismatch},
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
