package sessionauth

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/caddyserver/caddy/v2"
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
	addr, err := adminAddress(c)
	if err != nil {
		return err
	}
	parsed, err := caddy.ParseNetworkAddress(addr)
	if err != nil || parsed.PortRangeSize() > 1 {
		return fmt.Errorf("%q is not an admin address such as localhost:2019", addr)
	}
	origin := "http://" + parsed.JoinHostPort(0)
	if parsed.IsUnixNetwork() || parsed.IsFdNetwork() {
		origin = "http://127.0.0.1"
	}
	req, err := http.NewRequest(http.MethodDelete, origin+"/session-auth/sessions?all=true&progress=true", nil)
	if err != nil {
		return err
	}
	if !parsed.IsUnixNetwork() && !parsed.IsFdNetwork() {
		req.Header.Set("Origin", origin)
	}
	client := http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, parsed.Network, parsed.JoinHostPort(0))
		},
	}}
	res, err := client.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) {
			err = op.Err
		}
		return fmt.Errorf("cannot reach Caddy's admin API at %s (is Caddy running, and is that its admin address?): %v", addr, err)
	}
	defer res.Body.Close()
	lines := bufio.NewScanner(res.Body)
	if res.StatusCode/100 != 2 {
		var apiErr struct {
			Error string `json:"error"`
		}
		if lines.Scan() && json.Unmarshal(lines.Bytes(), &apiErr) == nil && apiErr.Error != "" {
			return fmt.Errorf("%s (admin API, HTTP %d)", apiErr.Error, res.StatusCode)
		}
		return fmt.Errorf("the admin API at %s answered %s", addr, res.Status)
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
