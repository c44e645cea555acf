package integration

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sessionauth/caddy-sessionauth/internal/redisserver"
)

// discoveryDoc serves an OIDC discovery document whose issuer is what
// issuerOf makes of the server's own URL.
func discoveryDoc(t *testing.T, issuerOf func(self string) string) string {
	t.Helper()
	var self string
	self = "http://" + serveLocal(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer": issuerOf(self), "authorization_endpoint": self + "/auth", "token_endpoint": self + "/token",
			"jwks_uri": self + "/keys", "id_token_signing_alg_values_supported": []string{"RS256"},
		})
	}))
	return self
}

// A Caddy whose config names a provider that refuses connections and one
// whose discovery document names another issuer starts all the same, and
// its log warns of each at start, naming the provider and the reason
// (docs/sign-in.md). `caddy sessions check` then tries every part: the
// store, the providers, GeoIP and the mail server (STARTTLS and login, no
// mail sent), prints one line per part, names the failing ones, and
// exits non-zero; --json prints the same as JSON.
func TestCheckAtStartAndCheckCommand(t *testing.T) {
	t.Setenv("SESSIONAUTH_TEST_SMTP_PASSWORD", "mail-secret")
	good := discoveryDoc(t, func(self string) string { return self })
	wrong := discoveryDoc(t, func(string) string { return "https://sso.example.com" })
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + l.Addr().String()
	_ = l.Close() // nothing listens there now: connections are refused
	ms := newMailServer(t, "", true, 0)
	db := geoDB(t)

	dataDir, logFile := t.TempDir(), filepath.Join(t.TempDir(), "caddy.log")
	storePath := filepath.Join(t.TempDir(), "sessions.db")
	port, adminPort := redisserver.FreePort(t), redisserver.FreePort(t)
	provider := func(name, issuer string) string {
		return "oidc " + name + " {\n issuer " + issuer + "\n client_id gateway\n client_secret secret\n}\n"
	}
	options := "store file " + storePath + "\ngeoip " + db + "\nnotify email {\n" + mailBlock(ms) + "\n}\n" +
		"sign_in {\n" + provider("good", good) + provider("down", down) + provider("wrong", wrong) + "}"
	text := strings.NewReplacer("{PORT}", fmt.Sprint(port), "{ADMIN}", fmt.Sprint(adminPort), "{UPSTREAM}", newUpstream(t).addr,
		"\tauto_https off\n", "\tauto_https off\n\tlog {\n\t\toutput file "+logFile+"\n\t\tformat json\n\t}\n").Replace(site(options))

	p := startCaddyProcess(t, text, dataDir)
	p.waitServing(t, fmt.Sprintf("http://127.0.0.1:%d", port))

	// The warnings at start, one per failing provider.
	reasons := map[string]string{}
	waitUntil(t, 20*time.Second, func() bool {
		b, _ := os.ReadFile(logFile)
		for _, line := range strings.Split(string(b), "\n") {
			var entry struct{ Level, Msg, Provider, Reason string }
			if json.Unmarshal([]byte(line), &entry) == nil && entry.Level == "warn" && strings.Contains(entry.Msg, "OIDC provider's discovery failed") {
				reasons[entry.Provider] = entry.Reason
			}
		}
		return len(reasons) >= 2
	})
	if len(reasons) != 2 || reasons["down"] != "connection refused" || !strings.HasPrefix(reasons["wrong"], `wrong issuer: the discovery document says "https://sso.example.com"`) {
		t.Fatalf("warnings at start: %v", reasons)
	}

	// caddy sessions check: a line per part, the failing ones named.
	admin := fmt.Sprintf("127.0.0.1:%d", adminPort)
	out, err := caddyCLI(t, dataDir, "sessions", "check", "--address", admin)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 {
		t.Fatalf("caddy sessions check with failing parts: %v\n%s", err, out)
	}
	for _, want := range []string{
		"store file " + storePath + ": ok (wrote and read back in ",
		"oidc good " + good + ": ok (discovery answered)",
		"oidc down " + down + ": FAIL: connection refused",
		"oidc wrong " + wrong + `: FAIL: wrong issuer: the discovery document says "https://sso.example.com"`,
		"geoip " + db + ": ok (loaded: GeoLite2-City, built " + time.Now().UTC().Format("2006-01"),
		"smtp " + ms.addr + ": ok (STARTTLS, signed in as mailer; no mail sent)",
		"Error: 2 of 6 parts failed: oidc down, oidc wrong",
	} {
		if !strings.Contains(out, "\n"+want) && !strings.HasPrefix(out, want) {
			t.Errorf("caddy sessions check does not say %q:\n%s", want, out)
		}
	}
	ms.mu.Lock()
	mailFrom, auths := ms.mailFrom, slices.Clone(ms.auths)
	ms.mu.Unlock()
	if mailFrom != 0 || !slices.Equal(auths, []string{"mailer:mail-secret"}) {
		t.Errorf("the SMTP check: %d MAIL FROM (want none), logins %v", mailFrom, auths)
	}

	// --json: the admin API's report on standard output.
	cmd := exec.Command(filepath.Join(binaries(t), "caddy"), "sessions", "check", "--json", "--address", admin)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	if err := cmd.Run(); err == nil {
		t.Fatal("caddy sessions check --json with failing parts exited 0")
	}
	var report struct {
		OK    bool `json:"ok"`
		Parts []struct {
			Kind, Name, Error string
			OK                bool
		} `json:"parts"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &report); err != nil {
		t.Fatalf("--json: %v\n%s", err, stdout.String())
	}
	var failed []string
	for _, part := range report.Parts {
		if !part.OK {
			failed = append(failed, part.Kind+" "+part.Name+": "+part.Error)
		}
	}
	if report.OK || len(report.Parts) != 6 || len(failed) != 2 || failed[0] != "oidc down: connection refused" {
		t.Fatalf("--json: %s", stdout.String())
	}
}
