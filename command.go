package sessionauth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/sessionauth/caddy-sessionauth/session"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "sessions",
		Usage: "list --user <id> | revoke (--user <id> [--except <id>] | --id <id>) | events --user <id> [--limit <n>]",
		Short: "Lists, revokes and audits session_auth sessions of a running Caddy",
		Long: `
Talks to the session_auth routes of a running Caddy's admin API, like
'caddy reload' does: --address, or the admin address of --config, or the
default localhost:2019.

  caddy sessions list --user alice
  caddy sessions revoke --user alice --except 2bd806c97f0e406e30184bf965e48518
  caddy sessions revoke --id 2bd806c97f0e406e30184bf965e48518
  caddy sessions events --user alice --limit 20

Lists come a page at a time; the command follows the pages and prints
everything (or, for events, the newest --limit). --json prints the admin
API's JSON instead of a table.`,
		CobraFunc: configureSessionsCommand,
	})
}

// configureSessionsCommand sets up `caddy sessions` and its subcommands.
func configureSessionsCommand(cmd *cobra.Command) {
	pf := cmd.PersistentFlags()
	pf.String("address", "", "Address of the administration API, if not the config's or the default")
	pf.StringP("config", "c", "", "Configuration file whose admin address to use")
	pf.StringP("adapter", "a", "", "Name of the config adapter")
	pf.Bool("json", false, "Print JSON instead of a table")
	pf.Int("page-size", 1000, "Entries per admin API request when listing (1 to 1000)")

	list := &cobra.Command{
		Use: "list --user <id>", Short: "List a user's sessions, active and recently ended",
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			user, _ := c.Flags().GetString("user")
			if user == "" {
				return errors.New("--user is required")
			}
			body, err := adminList(c, "/session-auth/users/"+url.PathEscape(user)+"/sessions", 0)
			if err != nil {
				return err
			}
			return printSessions(c, body)
		},
	}
	list.Flags().String("user", "", "User id")

	revoke := &cobra.Command{
		Use: "revoke (--user <id> [--except <session>] | --id <session>)", Short: "End sessions",
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			user, _ := c.Flags().GetString("user")
			id, _ := c.Flags().GetString("id")
			except, _ := c.Flags().GetString("except")
			var path string
			switch {
			case user != "" && id == "":
				path = "/session-auth/users/" + url.PathEscape(user) + "/sessions"
				if except != "" {
					path += "?except=" + url.QueryEscape(except)
				}
			case id != "" && user == "" && except == "":
				path = "/session-auth/sessions/" + url.PathEscape(id)
			default:
				return errors.New("give --user (with --except, if you like) or --id")
			}
			body, _, err := adminCall(c, http.MethodDelete, path)
			if err != nil {
				return err
			}
			if asJSON(c) {
				return printJSON(c, body)
			}
			if id != "" {
				fmt.Fprintf(c.OutOrStdout(), "revoked session %s\n", id)
				return nil
			}
			var res struct {
				Revoked []string `json:"revoked"`
			}
			if err := json.Unmarshal(body, &res); err != nil {
				return fmt.Errorf("reading the answer: %w", err)
			}
			fmt.Fprintf(c.OutOrStdout(), "revoked %d session(s) of %s\n", len(res.Revoked), user)
			for _, r := range res.Revoked {
				fmt.Fprintln(c.OutOrStdout(), "  "+r)
			}
			return nil
		},
	}
	revoke.Flags().String("user", "", "User id: end all of the user's sessions")
	revoke.Flags().String("except", "", "With --user: keep this session")
	revoke.Flags().String("id", "", "End one session")

	events := &cobra.Command{
		Use: "events --user <id> [--limit <n>]", Short: "Show a user's audit events, newest first",
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			user, _ := c.Flags().GetString("user")
			limit, _ := c.Flags().GetInt("limit")
			if user == "" {
				return errors.New("--user is required")
			}
			if c.Flags().Changed("limit") && limit < 1 {
				return errors.New("--limit must be at least 1")
			}
			body, err := adminList(c, "/session-auth/users/"+url.PathEscape(user)+"/events", limit)
			if err != nil {
				return err
			}
			return printEvents(c, body)
		},
	}
	events.Flags().String("user", "", "User id")
	events.Flags().Int("limit", 0, "Most events to show (default all)")

	cmd.AddCommand(list, revoke, events)
	cmd.RunE = func(c *cobra.Command, _ []string) error { return c.Help() }
}

func asJSON(c *cobra.Command) bool {
	v, _ := c.Flags().GetBool("json")
	return v
}

// adminCall makes one admin API request and returns the body of a 2xx
// answer and the path of the next page when the answer is a page of a
// list, or the API's error message.
func adminCall(c *cobra.Command, method, path string) (body []byte, next string, err error) {
	address, _ := c.Flags().GetString("address")
	config, _ := c.Flags().GetString("config")
	adapter, _ := c.Flags().GetString("adapter")
	addr, err := caddycmd.DetermineAdminAPIAddress(address, nil, config, adapter)
	if err != nil {
		return nil, "", err
	}
	res, err := caddycmd.AdminAPIRequest(addr, method, path, nil, nil)
	if err != nil {
		return nil, "", err
	}
	defer res.Body.Close()
	body, err = io.ReadAll(io.LimitReader(res.Body, 16<<20))
	if err != nil {
		return nil, "", err
	}
	if res.StatusCode/100 != 2 {
		var apiErr struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(body, &apiErr) == nil && apiErr.Error != "" {
			return nil, "", errors.New(apiErr.Error)
		}
		return nil, "", fmt.Errorf("admin API answered %s", res.Status)
	}
	return body, nextPage(res.Header), nil
}

// nextPage finds the Link rel="next" of a page; only a path of these
// routes is followed.
func nextPage(h http.Header) string {
	for _, v := range h.Values("Link") {
		for _, link := range strings.Split(v, ",") {
			target, params, ok := strings.Cut(strings.TrimSpace(link), ";")
			if ok && strings.Contains(params, `rel="next"`) && strings.HasPrefix(target, "<") && strings.HasSuffix(target, ">") {
				if p := target[1 : len(target)-1]; strings.HasPrefix(p, "/session-auth/") {
					return p
				}
			}
		}
	}
	return ""
}

// adminList reads a list page after page, following the Link headers,
// and returns it as one JSON array: all of it, or the first max entries.
func adminList(c *cobra.Command, path string, max int) ([]byte, error) {
	pageLen, _ := c.Flags().GetInt("page-size")
	if pageLen < 1 || pageLen > 1000 {
		return nil, errors.New("--page-size must be from 1 to 1000")
	}
	if max > 0 {
		pageLen = min(max, pageLen)
	}
	all := []json.RawMessage{}
	seen := map[string]bool{}
	for next := path + "?limit=" + strconv.Itoa(pageLen); next != ""; {
		if seen[next] {
			return nil, errors.New("the admin API's pages lead back to one already read")
		}
		seen[next] = true
		body, more, err := adminCall(c, http.MethodGet, next)
		if err != nil {
			return nil, err
		}
		var page []json.RawMessage
		if err := json.Unmarshal(body, &page); err != nil {
			return nil, fmt.Errorf("reading the answer: %w", err)
		}
		all = append(all, page...)
		if max > 0 && len(all) >= max {
			all = all[:max]
			break
		}
		next = more
	}
	return json.Marshal(all)
}

func printJSON(c *cobra.Command, body []byte) error {
	var out bytes.Buffer
	if err := json.Indent(&out, body, "", "  "); err != nil {
		return err
	}
	out.WriteByte('\n')
	_, err := c.OutOrStdout().Write(out.Bytes())
	return err
}

func printSessions(c *cobra.Command, body []byte) error {
	if asJSON(c) {
		return printJSON(c, body)
	}
	var list []sessionJSON
	if err := json.Unmarshal(body, &list); err != nil {
		return fmt.Errorf("reading the answer: %w", err)
	}
	tw := tabwriter.NewWriter(c.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SESSION\tSTATE\tDEVICE\tBROWSER\tOS\tLOCATION\tIP\tLAST ACTIVE\tSIGNED IN")
	for _, s := range list {
		state := "active"
		if !s.Active && s.EndReason != nil {
			state = *s.EndReason
		}
		loc := strings.Trim(s.City+", "+s.Country, ", ")
		device := s.DeviceName
		if s.Kind == session.KindToken {
			device = "API token " + strconv.Quote(s.Name) // by name: its value is nowhere
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, state, dash(device), dash(s.Browser), dash(s.OS),
			dash(loc), dash(s.IPAddress), shortTime(s.LastActiveAt), shortTime(s.CreatedAt))
	}
	if len(list) == 0 {
		fmt.Fprintln(tw, "(no sessions)")
	}
	return tw.Flush()
}

func printEvents(c *cobra.Command, body []byte) error {
	if asJSON(c) {
		return printJSON(c, body)
	}
	var evs []struct {
		Type, Reason, Actor, Country, City string
		At                                 time.Time
		SessionID                          string `json:"session_id"`
		IP                                 string `json:"ip_address"`
	}
	if err := json.Unmarshal(body, &evs); err != nil {
		return fmt.Errorf("reading the answer: %w", err)
	}
	tw := tabwriter.NewWriter(c.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "AT\tEVENT\tSESSION\tIP\tLOCATION\tREASON\tACTOR")
	for _, e := range evs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.At.UTC().Format("2006-01-02 15:04:05Z"), e.Type, dash(e.SessionID),
			dash(e.IP), dash(strings.Trim(e.City+", "+e.Country, ", ")), dash(e.Reason), dash(e.Actor))
	}
	if len(evs) == 0 {
		fmt.Fprintln(tw, "(no events)")
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func shortTime(s string) string {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return s
	}
	return t.UTC().Format("2006-01-02 15:04Z")
}
