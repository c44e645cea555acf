package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// forwardAuthRow is the name of the row where Caddy's own forward_auth, in
// front of the app, asks a gateway site (session_auth with forward_auth,
// SPEC section 16) at /.auth/verify before each request: what a verify
// request costs a deployment that keeps the gateway apart from its apps.
const forwardAuthRow = "Caddy forward_auth → this gateway"

// identityHeaders are the headers of SPEC section 4 that a valid session
// gets; forward_auth copies them from the verify answer to the app.
var identityHeaders = []string{"User", "Email", "Name", "Roles", "Session", "Session-Created", "IP", "Login-IP",
	"IP-Changed", "Device", "Device-Type", "Browser", "OS", "Country", "City", "Risk", "Method", "Authenticated-At"}

// forwardAuthFront is the app site's forward_auth to the gateway, with as
// many idle connections kept as the app's own proxy keeps.
func forwardAuthFront(gateway string) string {
	copied := make([]string, len(identityHeaders))
	for i, h := range identityHeaders {
		copied[i] = "X-Auth-" + h
	}
	return "\tforward_auth " + strings.TrimPrefix(gateway, "http://") + " {\n\t\turi /.auth/verify\n\t\tcopy_headers " +
		strings.Join(copied, " ") + "\n\t\ttransport http {\n\t\t\tkeepalive_idle_conns_per_host 256\n\t\t}\n\t}\n"
}

// forwardAuthGateway is the gateway's session_auth block (auth's) with
// forward_auth on, which needs base_url.
func forwardAuthGateway(auth, gateway string) string {
	return strings.Replace(auth, "\t\tmax_sessions 0\n", "\t\tmax_sessions 0\n\t\tbase_url "+gateway+"\n\t\tforward_auth {\n\t\t\tallow_hosts 127.0.0.1\n\t\t}\n", 1)
}

// verifyMissing says why the row cannot run when the gateway has no
// verify endpoint (a 404), and "" when it has one.
func verifyMissing(gateway string) string {
	res, err := http.Get(gateway + "/.auth/verify")
	if err != nil {
		return "the gateway does not answer: " + err.Error()
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, res.Body)
	if res.StatusCode == http.StatusNotFound {
		return "the gateway answers 404 at /.auth/verify: this build has no forward auth endpoint (SPEC section 16)"
	}
	return ""
}

// answersOK checks that a request with t's session passes the verify
// request and reaches the app, before the load counts anything.
func answersOK(t *target) error {
	req, _ := http.NewRequest("GET", t.addr+"/app", nil)
	req.Header.Set("Cookie", t.cookie)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", t.name, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 512))
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: a signed-in request answered %d: %s", t.name, res.StatusCode, body)
	}
	return nil
}

func firstLine(b []byte) string {
	line, _, _ := bytes.Cut(bytes.TrimSpace(b), []byte("\n"))
	return string(line)
}
