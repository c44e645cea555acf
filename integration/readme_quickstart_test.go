package integration

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/sessionauth/caddy-sessionauth/internal/redisserver"
)

// The README's "Protect an app that has no login", as written: its
// Caddyfile on free ports (and an admin address of the test's), in front
// of an app on what was port 3000.
func TestREADMEQuickStart(t *testing.T) {
	raw, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(raw), "<!-- quickstart -->\n```caddyfile\n")
	block, _, ok2 := strings.Cut(after, "```")
	if !ok || !ok2 {
		t.Fatal("README has no quick start Caddyfile")
	}
	up := newUpstream(t)
	port, adminPort := redisserver.FreePort(t), redisserver.FreePort(t)
	text := fmt.Sprintf("{\n\tadmin 127.0.0.1:%d\n\tpersist_config off\n}\n", adminPort) +
		strings.NewReplacer("localhost:8082", fmt.Sprintf("localhost:%d", port), "localhost:3000", up.addr).Replace(block)
	g := &gateway{t: t, base: fmt.Sprintf("http://localhost:%d", port), port: port}
	g.load(text)
	t.Cleanup(stopCaddy)

	b := newBrowser(t, g.base)
	if p := b.get("/reports"); p.status != http.StatusSeeOther || p.header.Get("Location") != "/.auth/sign-in?next=%2Freports" {
		t.Fatalf("unauthenticated: %d %q", p.status, p.header.Get("Location"))
	}
	if p := b.signInForm("/reports", "alice", "demo"); p.status != http.StatusSeeOther || p.header.Get("Location") != "/reports" {
		t.Fatalf("alice / demo: %d %s", p.status, p.body)
	}
	h := b.upstreamSees("/reports")
	if h["X-Auth-User"] != "alice" || h["X-Auth-Email"] != "alice@example.com" || h["X-Auth-Name"] != "Alice Example" {
		t.Fatalf("the app saw %v", h)
	}
}
