package sessionauth

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// checkCommand is `caddy sessions check`: the running Caddy tries each
// part its config needs (admin_check.go) and the command prints a line
// per part.
func checkCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "check",
		Short: "Try what the running config needs: the store, each OIDC provider, GeoIP, SMTP",
		Long: `Asks the running Caddy (its admin API, as 'caddy reload' finds it) to try
each part its session_auth config uses, each for at most 5 seconds:

  store     writes a short-lived record and reads it back
  oidc      fetches the provider's discovery document (issuer, endpoints)
  geoip     the database in use: its type and build date
  smtp      connects, EHLO, STARTTLS or TLS and the login as configured;
            sends no mail
  webhook   configuration only: the receiver is not called

Prints one line per part, "ok" or "FAIL: <reason>", and exits non-zero
when a part fails. --json prints the admin API's answer.`,
		Args: cobra.NoArgs,
		RunE: runCheck,
	}
}

func runCheck(c *cobra.Command, _ []string) error {
	// Each part has 5 seconds, all at once: 30 is room for a slow link.
	res, addr, err := adminRequest(c, http.MethodGet, "/session-auth/check", 30*time.Second)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("reading the admin API's answer: %w", err)
	}
	// A failed part is a 503 with the report; any other answer is the
	// admin API's own error (no session_auth in the config, say).
	var report checkReport
	if (res.StatusCode != http.StatusOK && res.StatusCode != http.StatusServiceUnavailable) ||
		json.Unmarshal(body, &report) != nil || report.Parts == nil {
		return adminError(addr, res, body)
	}
	if asJSON(c) {
		if err := printJSON(c, body); err != nil {
			return err
		}
	} else {
		for _, p := range report.Parts {
			fmt.Fprintln(c.OutOrStdout(), checkLine(p))
		}
	}
	var failed []string
	for _, p := range report.Parts {
		if !p.OK {
			failed = append(failed, partName(p))
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d parts failed: %s", len(failed), len(report.Parts), strings.Join(failed, ", "))
	}
	return nil
}

// checkLine is a part as the command prints it:
// "oidc corp https://sso.example.com/: FAIL: connection refused".
func checkLine(p checkPart) string {
	line := partName(p)
	if p.Target != "" {
		line += " " + p.Target
	}
	if !p.OK {
		return line + ": FAIL: " + p.Error
	}
	if p.Detail != "" {
		return line + ": ok (" + p.Detail + ")"
	}
	return line + ": ok"
}

func partName(p checkPart) string {
	return strings.TrimSpace(p.Kind + " " + p.Name)
}
