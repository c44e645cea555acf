package sessionauth

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

// Two of alice's sessions share 19 characters: the table widens every id
// to 20 so that each is told apart by what it shows.
const (
	cliA = "2bd806c97f0e406e30184bf965e48518"
	cliB = "2bd806c97f0e8a1d3c2e8e7ad1b3f0a2"
	cliC = "2bd806c97f0e8a1d3c9f00aa11bb22cc"
)

// fakeAdmin answers the admin routes the CLI calls with fixed data, as
// Caddy's admin endpoint frames them (errors as {"error": "…"}).
func fakeAdmin(t *testing.T) string {
	t.Helper()
	session := func(id, state, device, browser, os, city, country, ip string) string {
		active, end := "true", "null"
		if state != "active" {
			active, end = "false", `"`+state+`"`
		}
		return fmt.Sprintf(`{"id":%q,"user_id":"alice","active":%s,"ip_address":%q,"device_name":%q,"browser":%q,"os":%q,"country":%q,"city":%q,"created_at":"2026-11-20T08:00:00Z","last_active_at":"2026-11-23T21:26:40Z","end_reason":%s}`,
			id, active, ip, device, browser, os, country, city, end)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /session-auth/users/alice/sessions", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "[%s,%s,%s]", session(cliA, "active", "iPhone", "Chrome", "iOS", "Berlin", "DE", "198.51.100.7"),
			session(cliB, "active", "Mac", "Safari", "macOS", "", "", "::1"),
			session(cliC, "logout", "Windows PC", "Edge", "Windows", "", "", "127.0.0.1"))
	})
	mux.HandleFunc("GET /session-auth/users/nobody/sessions", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "[]")
	})
	mux.HandleFunc("GET /session-auth/users/alice/events", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `[{"type":"revoke","at":"2026-11-23T21:30:00Z","session_id":%q,"ip_address":"127.0.0.1","reason":"revoked","actor":"admin"},{"type":"login","at":"2026-11-23T21:26:40Z","session_id":%q,"ip_address":"198.51.100.7","country":"DE","city":"Berlin"}]`, cliB, cliA)
	})
	mux.HandleFunc("GET /session-auth/check", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, `{"ok":false,"parts":[{"kind":"store","name":"file","target":"/var/lib/caddy/sessions.db","ok":true,"detail":"wrote and read back in 1ms"},`+
			`{"kind":"oidc","name":"corp","target":"https://sso.example.com/","ok":false,"error":"connection refused"},`+
			`{"kind":"geoip","target":"/var/lib/GeoIP/GeoLite2-City.mmdb","ok":true,"detail":"loaded: GeoLite2-City, built 2026-11-28"}]}`)
	})
	mux.HandleFunc("DELETE /session-auth/sessions/{id}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") != cliA {
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprintf(w, `{"error":"no active session %s"}`, r.PathValue("id"))
			return
		}
		fmt.Fprintf(w, `{"id":%q}`, cliA)
	})
	mux.HandleFunc("DELETE /session-auth/users/alice/sessions", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"revoked":[%q]}`, cliB)
	})
	mux.HandleFunc("POST /session-auth/compact", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"path":"/var/lib/caddy/sessions.db","bytes_before":268566528,"bytes_after":524288}`)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// runSessionsCommand runs `caddy sessions <args>` as Caddy's command line
// would and returns what it printed, the error last as Caddy prints it.
func runSessionsCommand(args ...string) string {
	def := caddycmd.Commands()["sessions"]
	cmd := &cobra.Command{Use: def.Name, SilenceUsage: true, SilenceErrors: true}
	def.CobraFunc(cmd)
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	if err := cmd.Execute(); err != nil {
		fmt.Fprintf(&out, "Error: %v\n", err)
	}
	return out.String()
}

// The CLI's output, tables and errors alike, as a user reads it:
// testdata/cli_output.golden. Run with -update after a deliberate change.
func TestCLIOutputGolden(t *testing.T) {
	addr := fakeAdmin(t)
	caddyfile := filepath.Join(t.TempDir(), "Caddyfile")
	if err := os.WriteFile(caddyfile, []byte("{\n\tadmin "+addr+"\n}\n:0 {\n\trespond ok\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := [][]string{
		{"list", "--user", "alice"},
		{"list", "--user", "nobody"},
		{"list", "--user", "alice", "--config", caddyfile},
		{"events", "--user", "alice"},
		{"check"},
		{"revoke", "--user", "alice", "--id", "2bd806c97f0e406e30"},
		{"revoke", "--user", "alice", "--except", "2bd806c97f0e8a1d3c2"},
		{"revoke", "--user", "alice", "--all"},
		{"revoke", "--user", "alice"},
		{"revoke", "--user", "alice", "--all", "--except", "2bd806c97f0e8a1d3c2"},
		{"revoke", "--all"},
		{"revoke", "--id", cliA, "--all"},
		{"revoke", "--user", "alice", "--id", "2bd806c97f0e8a1d3c"},
		{"revoke", "--user", "alice", "--id", "2bd806c97f0eeeeeee"},
		{"revoke", "--id", "2bd806c97f0e406e30"},
		{"revoke", "--id", "2bd806c97f"},
		{"revoke", "--id", "not-an-id"},
		{"revoke", "--id", "0123456789abcdef0123456789abcdef"},
		{"revoke"},
		{"lst"},
		{"compact"},
		{"compact", "--file", "/nonexistent/sessions.db"},
		{"lst", "--user", "alice"},
		{"--user", "alice"},
		{"list", "--user", "alice", "--address", "127.0.0.1:1"},
	}
	var got strings.Builder
	for _, args := range cases {
		run := args
		if !slices.Contains(args, "--address") && !slices.Contains(args, "--config") {
			run = append(slices.Clip(args), "--address", addr)
		}
		out := runSessionsCommand(run...)
		shown := strings.ReplaceAll(strings.Join(args, " "), caddyfile, "Caddyfile")
		fmt.Fprintf(&got, "$ caddy sessions %s\n%s\n", shown, strings.ReplaceAll(out, addr, "ADMIN"))
	}
	matchGolden(t, "testdata/cli_output.golden", got.String())
}

// `revoke --user alice` with neither --all nor --except sends nothing to
// the admin API: a forgotten flag must not end every session of a user.
func TestCLIRevokeUserAloneRevokesNothing(t *testing.T) {
	var calls []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls = append(calls, r.Method+" "+r.URL.Path)
		fmt.Fprint(w, `{"revoked":[]}`)
	}))
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")
	out := runSessionsCommand("revoke", "--user", "alice", "--address", addr)
	if !strings.Contains(out, "Error: nothing revoked: give --all") || len(calls) != 0 {
		t.Fatalf("revoke --user alone: %q, admin API calls %v", out, calls)
	}
	out = runSessionsCommand("revoke", "--user", "alice", "--all", "--address", addr)
	if strings.Contains(out, "Error") || !slices.Equal(calls, []string{"DELETE /session-auth/users/alice/sessions"}) {
		t.Fatalf("revoke --user --all: %q, admin API calls %v", out, calls)
	}
}

// The unknown-subcommand answer lists the subcommands registered, so a
// subcommand added later (by another file) is offered without an edit here.
func TestCLIUnknownSubcommandListsWhatIsRegistered(t *testing.T) {
	def := caddycmd.Commands()["sessions"]
	cmd := &cobra.Command{Use: def.Name, SilenceUsage: true, SilenceErrors: true}
	def.CobraFunc(cmd)
	cmd.AddCommand(&cobra.Command{Use: "inspect", RunE: func(*cobra.Command, []string) error { return nil }})
	cmd.SetOut(&bytes.Buffer{})
	cmd.SetArgs([]string{"lst", "--user", "alice"})
	err := cmd.Execute()
	if err == nil || !strings.HasPrefix(err.Error(), `unknown subcommand "lst" (did you mean list?): use `) || !strings.Contains(err.Error(), "inspect") {
		t.Fatalf("%v", err)
	}
}
