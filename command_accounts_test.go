package sessionauth

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// realAdmin serves the admin API's /session-auth/ routes of the running
// handlers as Caddy's admin endpoint frames them; its address.
func realAdmin(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := (adminAPI{}).serve(w, r); err != nil {
			var api caddy.APIError
			if !errors.As(err, &api) {
				api = caddy.APIError{HTTPStatus: 500, Err: err}
			}
			w.WriteHeader(api.HTTPStatus)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": api.Err.Error()})
		}
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// `caddy sessions accounts` against the admin API of a running handler:
// add prints the invitation, list and show the account, disable and
// enable change it, reset prints a new invitation, remove needs --yes.
func TestAccountCLI(t *testing.T) {
	storedHandler(t, func(h *Handler) { h.BaseURL = "https://app.example.com" })
	addr := realAdmin(t)
	run := func(args ...string) string {
		return runSessionsCommand(append(append([]string{"accounts"}, args...), "--address", addr)...)
	}

	out := run("add", "kim", "--email", "kim@example.com", "--roles", "ops,dev")
	if !regexp.MustCompile(`created account kim\ninvitation \(works once, until .*\):\n  https://app\.example\.com/\.auth/invite\?token=[A-Za-z0-9_-]{43}\n`).MatchString(out) {
		t.Fatalf("add: %q", out)
	}
	if out := run("add", "kim"); !strings.Contains(out, "Error:") || !strings.Contains(out, "HTTP 409") {
		t.Fatalf("add twice: %q", out)
	}
	if out := run("list", "--page-size", "1"); !strings.Contains(out, "kim") || !strings.Contains(out, "kim@example.com") || !strings.Contains(out, "ops,dev") || !strings.Contains(out, "never") {
		t.Fatalf("list: %q", out)
	}
	run("add", "lee")
	if out := run("list", "--page-size", "1"); !strings.Contains(out, "kim") || !strings.Contains(out, "lee") {
		t.Fatalf("list over two pages: %q", out)
	}
	if out := run("disable", "kim"); out != "disabled kim\n" {
		t.Fatalf("disable: %q", out)
	}
	if out := run("show", "kim"); !strings.Contains(out, "disabled") {
		t.Fatalf("show after disable: %q", out)
	}
	if out := run("enable", "kim"); out != "enabled kim\n" {
		t.Fatalf("enable: %q", out)
	}
	if out := run("reset", "kim", "--second-factor"); !strings.Contains(out, "reset account kim\n") || !strings.Contains(out, "/.auth/invite?token=") {
		t.Fatalf("reset: %q", out)
	}
	if out := run("remove", "kim"); !strings.Contains(out, "nothing removed") {
		t.Fatalf("remove without --yes: %q", out)
	}
	if out := run("remove", "kim", "--yes"); !strings.HasPrefix(out, "removed account kim") {
		t.Fatalf("remove: %q", out)
	}
	if out := run("show", "kim"); !strings.Contains(out, "no stored account") || !strings.Contains(out, "HTTP 404") {
		t.Fatalf("show after remove: %q", out)
	}
	if out := run("delete", "lee"); !strings.Contains(out, `Error: unknown subcommand "delete"`) {
		t.Fatalf("unknown subcommand: %q", out)
	}
}
