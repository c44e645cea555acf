package integration

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sessionauth/caddy-sessionauth/signature"
)

// The README's Python recipe, run as written, a verifier written here from
// SPEC section 4's words, and the README's Go recipe (signature.Verify) all
// accept a live signature and reject the same request tampered with: a
// replayed query, an added X_Auth_Roles, another Host.
func TestSignatureRecipes(t *testing.T) {
	python := lookPython(t)
	recipe := docBlock(t, "docs/headers.md", "### Verifying the identity headers (`sign_headers`)", "python")
	const secret = "s3cret-sign"
	up := newUpstream(t)
	g := loadCaddy(t, site("store memory\nsign_headers "+secret), up)
	c := newClient(t, g)
	c.signIn("alice", "roles", "dev")
	// From another address: X-Auth-IP, X-Auth-IP-Changed and X-Auth-Risk
	// are all there, so the order of x-auth-ip and x-auth-ip-changed counts.
	res := c.do("GET", "/docs/a%2Fb?q=1", "X-Forwarded-For", "203.0.113.5")
	if res.StatusCode != 200 || res.headers["X-Auth-Ip-Changed"] != "true" || res.headers["X-Auth-Signature"] == "" {
		t.Fatalf("signed request: %d %v", res.StatusCode, res.headers)
	}
	genuine := up.lastRequest()
	if genuine.RequestURI != "/docs/a%2Fb?q=1" {
		t.Fatalf("the upstream saw %q", genuine.RequestURI)
	}

	// Replays straight to the app, with the gateway's headers copied.
	replay := func(uri, host string, extra ...string) *http.Request {
		t.Helper()
		req, err := http.NewRequest("GET", "http://"+up.addr+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		p, q, _ := strings.Cut(uri, "?")
		req.URL.Opaque, req.URL.RawQuery = p, q
		req.Host = host
		req.Header = genuine.Header.Clone()
		for i := 0; i+1 < len(extra); i += 2 {
			req.Header[extra[i]] = append(req.Header[extra[i]], extra[i+1])
		}
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		return up.lastRequest()
	}
	cases := []struct {
		name string
		req  *http.Request
		ok   bool
	}{
		{"genuine", genuine, true},
		{"replayed unchanged", replay(genuine.RequestURI, genuine.Host), true},
		{"replayed with another query", replay("/docs/a%2Fb?q=2&to=mallory", genuine.Host), false},
		{"replayed with no query", replay("/docs/a%2Fb", genuine.Host), false},
		{"replayed with an added X_Auth_Roles", replay(genuine.RequestURI, genuine.Host, "X_Auth_Roles", "superadmin"), false},
		{"replayed with an added X.Auth.Admin", replay(genuine.RequestURI, genuine.Host, "X.Auth.Admin", "true"), false},
		{"replayed to another Host", replay(genuine.RequestURI, "evil.example"), false},
	}
	if _, ok := cases[4].req.Header[http.CanonicalHeaderKey("X_Auth_Roles")]; !ok {
		t.Fatalf("the added header did not reach the app: %v", cases[4].req.Header)
	}

	type input struct {
		Method  string      `json:"method"`
		Host    string      `json:"host"`
		Path    string      `json:"path"`
		Query   string      `json:"query"`
		Headers [][2]string `json:"headers"`
	}
	var inputs []input
	for _, tc := range cases {
		p, q, _ := strings.Cut(tc.req.RequestURI, "?")
		in := input{Method: tc.req.Method, Host: tc.req.Host, Path: p, Query: q}
		for k, vs := range tc.req.Header {
			for _, v := range vs {
				in.Headers = append(in.Headers, [2]string{k, v})
			}
		}
		inputs = append(inputs, in)

		if got := verifyFromTheWords(in.Method, in.Host, in.Path, in.Query, in.Headers, []byte(secret), time.Now()); got != tc.ok {
			t.Errorf("%s: the verifier from the SPEC's words says %v", tc.name, got)
		}
		r := &http.Request{Method: tc.req.Method, Host: tc.req.Host, URL: mustURI(t, tc.req.RequestURI), Header: tc.req.Header}
		if err := signature.Verify(r, []byte(secret), 2*time.Minute); (err == nil) != tc.ok {
			t.Errorf("%s: signature.Verify says %v", tc.name, err)
		}
	}

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "readme_recipe.py"), []byte(recipe), 0o644); err != nil {
		t.Fatal(err)
	}
	driver := `import json, sys
from readme_recipe import verify
for c in json.load(sys.stdin):
    print(verify(c["method"], c["host"], c["path"], c["query"], [tuple(h) for h in c["headers"]], sys.argv[1].encode()))
`
	if err := os.WriteFile(filepath.Join(dir, "driver.py"), []byte(driver), 0o644); err != nil {
		t.Fatal(err)
	}
	stdin, _ := json.Marshal(inputs)
	cmd := exec.Command(python, "driver.py", secret)
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("the README's Python recipe: %v\n%s", err, stderr.String())
	}
	got := strings.Fields(string(out))
	if len(got) != len(cases) {
		t.Fatalf("the README's Python recipe answered %q", out)
	}
	for i, tc := range cases {
		if got[i] != map[bool]string{true: "True", false: "False"}[tc.ok] {
			t.Errorf("%s: the README's Python recipe says %s", tc.name, got[i])
		}
	}
}

// verifyFromTheWords is SPEC section 4 read literally, on purpose without
// the signature package: "t=<unix seconds>,v1=<hex HMAC-SHA256(secret,
// canonical)>. Canonical is these lines joined by \n: the method; the Host;
// the escaped path; the raw query (empty line when none); t; then
// lower(name):value for every other header under the prefix, sorted by the
// lower-cased name alone, where a name belongs to the prefix when it matches
// with _ and . read as -."
func verifyFromTheWords(method, host, path, query string, headers [][2]string, secret []byte, now time.Time) bool {
	const prefix, sigName = "x-auth-", "x-auth-signature"
	dashes := strings.NewReplacer("_", "-", ".", "-")
	var sigs []string
	type field struct{ name, value string }
	var others []field
	for _, h := range headers {
		name := strings.ToLower(h[0])
		switch {
		case name == sigName:
			sigs = append(sigs, h[1])
		case strings.HasPrefix(dashes.Replace(name), prefix):
			others = append(others, field{name, h[1]})
		}
	}
	if len(sigs) != 1 {
		return false
	}
	tPart, vPart, ok := strings.Cut(sigs[0], ",")
	tStr, okT := strings.CutPrefix(tPart, "t=")
	mac, okV := strings.CutPrefix(vPart, "v1=")
	t, err := strconv.ParseInt(tStr, 10, 64)
	if !ok || !okT || !okV || err != nil || now.Sub(time.Unix(t, 0)).Abs() > 2*time.Minute {
		return false
	}
	slices.SortStableFunc(others, func(a, b field) int { return strings.Compare(a.name, b.name) })
	lines := []string{method, host, path, query, tStr}
	for _, f := range others {
		lines = append(lines, f.name+":"+f.value)
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(strings.Join(lines, "\n")))
	return hmac.Equal([]byte(hex.EncodeToString(m.Sum(nil))), []byte(mac))
}

func mustURI(t *testing.T, uri string) *url.URL {
	t.Helper()
	u, err := url.ParseRequestURI(uri)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// lookPython finds python3; with CI=true a missing one fails the test.
func lookPython(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("python3 is needed to run the README's recipe: %v", err)
		}
		t.Skipf("python3 not found (%v); CI=true makes this a failure", err)
	}
	return p
}
