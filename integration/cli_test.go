package integration

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

// runCLI runs `caddy sessions <args>` as Caddy's command line would.
func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	def, ok := caddycmd.Commands()["sessions"]
	if !ok {
		t.Fatal("no `caddy sessions` command registered")
	}
	cmd := &cobra.Command{Use: def.Name, Short: def.Short, SilenceUsage: true, SilenceErrors: true}
	def.CobraFunc(cmd)
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

// The CLI on the embedded stores: the file store (the default) works
// with it unchanged, as memory does.
func TestCLI(t *testing.T) {
	t.Run("file", func(t *testing.T) { testCLI(t, "store file "+filepath.Join(t.TempDir(), "sessions.db")) })
	t.Run("memory", func(t *testing.T) { testCLI(t, "store memory") })
}

func testCLI(t *testing.T, store string) {
	g := loadCaddy(t, site(store+"\nmax_sessions 0"), newUpstream(t))
	addr := strings.TrimPrefix(g.admin, "http://")
	user := "cli-" + randomID()
	a, b, c := newClient(t, g), newClient(t, g), newClient(t, g)
	a.signIn(user)
	b.signIn(user)
	c.signIn(user)
	aID := strings.SplitN(a.cookie, ".", 2)[0]
	bID := strings.SplitN(b.cookie, ".", 2)[0]

	out, err := runCLI(t, "list", "--user", user, "--address", addr)
	if err != nil || !strings.Contains(out, "SESSION") || !strings.Contains(out, aID) || strings.Count(out, "active") != 3 {
		t.Fatalf("list: %v\n%s", err, out)
	}
	out, err = runCLI(t, "list", "--user", user, "--address", addr, "--json")
	var list []map[string]any
	if err != nil || json.Unmarshal([]byte(out), &list) != nil || len(list) != 3 {
		t.Fatalf("list --json: %v\n%s", err, out)
	}
	out, err = runCLI(t, "revoke", "--id", bID, "--address", addr)
	if err != nil || !strings.Contains(out, "revoked session "+bID) || b.do("GET", "/").StatusCode != 401 {
		t.Fatalf("revoke --id: %v %s", err, out)
	}
	out, err = runCLI(t, "revoke", "--user", user, "--except", aID, "--address", addr)
	if err != nil || !strings.Contains(out, "revoked 1 session(s)") || a.do("GET", "/").StatusCode != 200 || c.do("GET", "/").StatusCode != 401 {
		t.Fatalf("revoke --except: %v %s", err, out)
	}
	out, err = runCLI(t, "events", "--user", user, "--limit", "10", "--address", addr)
	if err != nil || !strings.Contains(out, "EVENT") || strings.Count(out, " revoke ") != 2 || strings.Count(out, " login ") != 3 || !strings.Contains(out, "admin") {
		t.Fatalf("events: %v\n%q", err, out)
	}
	// Clear errors.
	for _, args := range [][]string{
		{"list", "--address", addr},
		{"revoke", "--address", addr},
		{"revoke", "--user", user, "--id", aID, "--address", addr},
		{"revoke", "--id", "0123456789abcdef0123456789abcdef", "--address", addr},
		{"events", "--user", user, "--limit", "0", "--address", addr},
		{"list", "--user", user, "--address", "127.0.0.1:1"},
	} {
		if out, err := runCLI(t, args...); err == nil {
			t.Errorf("%v succeeded: %s", args, out)
		}
	}
}
