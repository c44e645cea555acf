package sessionauth

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/spf13/cobra"
)

// revokeEveryoneCLI is `caddy sessions revoke --everyone`: the emergency
// stop, with a line of progress per batch of users the gateway reports,
// and no time limit (10⁵ users take longer than a request usually may).
func revokeEveryoneCLI(c *cobra.Command) error {
	for _, f := range []string{"user", "id", "except"} {
		if c.Flags().Changed(f) {
			return fmt.Errorf("--everyone ends every session: give it without --%s", f)
		}
	}
	res, addr, err := adminRequest(c, http.MethodDelete, "/session-auth/sessions?all=true&progress=true", 0)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	lines := bufio.NewScanner(res.Body)
	if res.StatusCode/100 != 2 {
		lines.Scan()
		return adminError(addr, res, lines.Bytes())
	}
	out := c.OutOrStdout()
	var p revokeProgress
	for lines.Scan() {
		if err := json.Unmarshal(lines.Bytes(), &p); err != nil {
			return fmt.Errorf("reading the answer: %w", err)
		}
		switch {
		case asJSON(c):
			fmt.Fprintln(out, lines.Text())
		case p.Error != "":
		case p.Done:
			fmt.Fprintf(out, "revoked %d session(s) of %d user(s)\n", p.Revoked, p.Users)
		default:
			fmt.Fprintf(out, "%d of %d users signed out, %d session(s) revoked\n", p.UsersDone, p.Users, p.Revoked)
		}
	}
	switch {
	case p.Error != "":
		return fmt.Errorf("stopped after %d of %d users (%d sessions revoked): %s", p.UsersDone, p.Users, p.Revoked, p.Error)
	case !p.Done:
		if err := lines.Err(); err != nil {
			return fmt.Errorf("the admin API's answer ended after %d of %d users: %w", p.UsersDone, p.Users, err)
		}
		return fmt.Errorf("the admin API's answer ended after %d of %d users", p.UsersDone, p.Users)
	}
	return nil
}
