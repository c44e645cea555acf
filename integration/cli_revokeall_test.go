package integration

import (
	"fmt"
	"strings"
	"testing"
)

// `caddy sessions revoke --everyone` signs everyone out and says how far
// it is as it goes; afterwards no session is let through.
func TestCLIRevokeEveryoneShowsProgress(t *testing.T) {
	g := loadCaddy(t, site("store memory"), newUpstream(t))
	addr := strings.TrimPrefix(g.admin, "http://")
	var clients []*client
	for i := 0; i < 3; i++ {
		c := newClient(t, g)
		c.signIn(fmt.Sprintf("everyone-%d-%s", i, randomID()))
		clients = append(clients, c)
	}
	if _, err := runCLI(t, "revoke", "--everyone", "--user", "x", "--address", addr); err == nil {
		t.Fatal("--everyone with --user was taken")
	}
	out, err := runCLI(t, "revoke", "--everyone", "--address", addr)
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for _, want := range []string{"0 of 3 users signed out, 0 session(s) revoked", "3 of 3 users signed out, 3 session(s) revoked", "revoked 3 session(s) of 3 user(s)"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for i, c := range clients {
		if res := c.do("GET", "/"); res.StatusCode != 401 {
			t.Errorf("client %d after revoke --everyone: %d", i, res.StatusCode)
		}
	}
}
