package integration

import (
	"bytes"
	"encoding/json"
	"os"
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
	// Ids show by a unique prefix: the user part (12) and at least 6 more.
	if err != nil || !strings.Contains(out, "SESSION") || !strings.Contains(out, aID[:18]) || strings.Contains(out, aID) || strings.Count(out, "active") != 3 {
		t.Fatalf("list: %v\n%s", err, out)
	}
	out, err = runCLI(t, "list", "--user", user, "--address", addr, "--json")
	var list []map[string]any
	if err != nil || json.Unmarshal([]byte(out), &list) != nil || len(list) != 3 {
		t.Fatalf("list --json: %v\n%s", err, out)
	}
	out, err = runCLI(t, "revoke", "--user", user, "--id", bID[:18], "--address", addr)
	if err != nil || !strings.Contains(out, "revoked session "+bID) || b.do("GET", "/").StatusCode != 401 {
		t.Fatalf("revoke --id by prefix: %v %s", err, out)
	}
	out, err = runCLI(t, "revoke", "--user", user, "--except", aID[:18], "--address", addr)
	if err != nil || !strings.Contains(out, "revoked 1 session(s)") || a.do("GET", "/").StatusCode != 200 || c.do("GET", "/").StatusCode != 401 {
		t.Fatalf("revoke --except: %v %s", err, out)
	}
	// --user alone ends nothing: every session goes only with --all.
	out, err = runCLI(t, "revoke", "--user", user, "--address", addr)
	if err == nil || !strings.Contains(err.Error(), "nothing revoked") || a.do("GET", "/").StatusCode != 200 {
		t.Fatalf("revoke --user alone: %v %s", err, out)
	}
	out, err = runCLI(t, "events", "--user", user, "--limit", "10", "--address", addr)
	if err != nil || !strings.Contains(out, "EVENT") || strings.Count(out, " revoke ") != 2 || strings.Count(out, " login ") != 3 || !strings.Contains(out, "admin") {
		t.Fatalf("events: %v\n%q", err, out)
	}
	out, err = runCLI(t, "revoke", "--user", user, "--all", "--address", addr)
	if err != nil || !strings.Contains(out, "revoked 1 session(s)") || a.do("GET", "/").StatusCode != 401 {
		t.Fatalf("revoke --all: %v %s", err, out)
	}
	// Clear errors.
	for _, args := range [][]string{
		{"list", "--address", addr},
		{"revoke", "--address", addr},
		{"revoke", "--user", user, "--address", addr},
		{"revoke", "--user", user, "--all", "--except", aID, "--address", addr},
		{"revoke", "--user", user, "--except", aID, "--id", aID, "--address", addr},
		{"revoke", "--user", "someone-else", "--id", aID, "--address", addr},
		{"revoke", "--id", aID[:18], "--address", addr},
		{"lst", "--address", addr},
		{"revoke", "--id", "0123456789abcdef0123456789abcdef", "--address", addr},
		{"events", "--user", user, "--limit", "0", "--address", addr},
		{"list", "--user", user, "--address", "127.0.0.1:1"},
	} {
		if out, err := runCLI(t, args...); err == nil {
			t.Errorf("%v succeeded: %s", args, out)
		}
	}
}

// A unix admin socket with permission bits (`admin unix//path|0220`, as
// Caddy's docs show it): the CLI dials the path without the bits, given
// as --address or read from --config, as Caddy's own commands do.
func TestCLIUnixAdminSocket(t *testing.T) {
	// A short directory: a socket path has a length limit of about 100.
	dir, err := os.MkdirTemp("", "sa")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	admin := "unix/" + filepath.Join(dir, "admin.sock") + "|0220"
	caddyfile := strings.Replace(site("store memory"), "admin 127.0.0.1:{ADMIN}", "admin "+admin, 1)
	g := loadCaddy(t, caddyfile, newUpstream(t))
	user := "unix-" + randomID()
	a := newClient(t, g)
	a.signIn(user)
	out, err := runCLI(t, "list", "--user", user, "--address", admin)
	if err != nil || strings.Count(out, "active") != 1 {
		t.Fatalf("list over %s: %v\n%s", admin, err, out)
	}
	config := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(config, []byte("{\n\tadmin "+admin+"\n}\n:0 {\n\trespond ok\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = runCLI(t, "revoke", "--user", user, "--all", "--config", config)
	if err != nil || !strings.Contains(out, "revoked 1 session(s)") || a.do("GET", "/").StatusCode != 401 {
		t.Fatalf("revoke --all with --config naming %s: %v\n%s", admin, err, out)
	}
}

// The built caddy, as a user types it: a mistyped subcommand with its
// flags is named, with the subcommands there are, not "unknown flag".
func TestCLIBinaryNamesUnknownSubcommand(t *testing.T) {
	out, err := caddyCLI(t, t.TempDir(), "sessions", "lst", "--user", "alice")
	if err == nil || !strings.Contains(out, `unknown subcommand "lst" (did you mean list?): use `) ||
		!strings.Contains(out, "list, revoke") || strings.Contains(out, "unknown flag") {
		t.Fatalf("%v\n%s", err, out)
	}
}
