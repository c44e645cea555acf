package sessionauth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/sessionauth/caddy-sessionauth/session"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "sessions",
		Usage: "list --user <id> | revoke (--user <id> (--all | --except <id>) | --id <id>) | events --user <id> [--limit <n>] | accounts add|list|show|disable|enable|remove|reset | check | backup <file> | salvage <damaged> <new> | compact [--file <path>]",
		Short: "Lists, revokes and audits session_auth sessions of a running Caddy, and checks its parts",
		Long: `
Talks to the session_auth routes of a running Caddy's admin API, like
'caddy reload' does: --address, or the admin address of --config, or the
default localhost:2019.

  caddy sessions list --user alice
  caddy sessions revoke --user alice --all
  caddy sessions revoke --user alice --except 2bd806c97f0e406e30
  caddy sessions revoke --user alice --id 2bd806c97f0e8a1d3c
  caddy sessions revoke --id 2bd806c97f0e406e30184bf965e48518
  caddy sessions events --user alice --limit 20
  caddy sessions check
  caddy sessions backup /var/backups/sessions.db
  caddy sessions salvage sessions.db sessions.db.salvaged   (offline)
  caddy sessions compact
  caddy sessions compact --file sessions.db   (offline)

The table shows session ids by their shortest unique prefix (all of one
user's ids share their first 12 characters, so at least 18); --id and
--except take such a prefix when --user names the user, else the whole id.
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

	refuseUnknownSubcommands(cmd) // command_unknown.go

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
		Use: "revoke (--user <id> (--all | --except <session>) | --id <session>)", Short: "End sessions",
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if everyone, _ := c.Flags().GetBool("everyone"); everyone {
				return revokeEveryoneCLI(c)
			}
			user, _ := c.Flags().GetString("user")
			id, _ := c.Flags().GetString("id")
			except, _ := c.Flags().GetString("except")
			all, _ := c.Flags().GetBool("all")
			// Every session of a user ends only when asked in so many
			// words: --user alone, a flag forgotten, revokes nothing.
			switch {
			case id != "" && (all || except != ""):
				return errors.New("--id ends one session: give it without --all and --except")
			case user == "" && id == "" && (all || except != ""):
				return errors.New("--all and --except need --user, whose sessions they end")
			case user == "" && id == "":
				return errors.New("give --user with --all or --except, or --id (with --user when the id is shortened)")
			case all && except != "":
				return errors.New("give --all or --except, not both")
			case id == "" && !all && except == "":
				return fmt.Errorf("nothing revoked: give --all to end every session of %s, --except <id> to keep one, or --id <id> to end one", user)
			}
			var err error
			if id, err = resolveID(c, user, id, "--id"); err != nil {
				return err
			}
			if except, err = resolveID(c, user, except, "--except"); err != nil {
				return err
			}
			var path string
			if id != "" {
				path = "/session-auth/sessions/" + url.PathEscape(id)
			} else {
				path = "/session-auth/users/" + url.PathEscape(user) + "/sessions"
				if except != "" {
					path += "?except=" + url.QueryEscape(except)
				}
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
	revoke.Flags().String("user", "", "User id: with --all or --except, end the user's sessions (or, with --id, one of them)")
	revoke.Flags().Bool("all", false, "With --user: end every session of the user")
	revoke.Flags().String("except", "", "With --user: end all but this session (an id or its unique prefix)")
	revoke.Flags().String("id", "", "End one session (the whole id, or with --user a unique prefix)")
	revoke.Flags().Bool("everyone", false, "End every session of every user (the emergency stop), showing progress")

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
	cmd.AddCommand(checkCommand())    // command_check.go
	cmd.AddCommand(accountsCommand()) // command_accounts.go
	cmd.AddCommand(fileCommands()...) // command_file.go
	cmd.RunE = func(c *cobra.Command, _ []string) error { return c.Help() }
}

func asJSON(c *cobra.Command) bool {
	v, _ := c.Flags().GetBool("json")
	return v
}

// adminCall makes one admin API request and returns the body of a 2xx
// answer and the path of the next page when the answer is a page of a
// list, or the API's error message as a sentence (caddycmd.AdminAPIRequest,
// whose dialing this follows, would print the raw JSON of the answer).
func adminCall(c *cobra.Command, method, path string) (body []byte, next string, err error) {
	return adminCallWith(c, method, path, nil)
}

// adminCallWith is adminCall with a JSON request body (nil: none).
func adminCallWith(c *cobra.Command, method, path string, reqBody []byte) (body []byte, next string, err error) {
	res, addr, err := adminRequestWith(c, method, path, reqBody, 30*time.Second)
	if err != nil {
		return nil, "", err
	}
	defer res.Body.Close()
	body, err = io.ReadAll(io.LimitReader(res.Body, 16<<20))
	if err != nil {
		return nil, "", fmt.Errorf("reading the admin API's answer: %w", err)
	}
	if res.StatusCode/100 != 2 {
		return nil, "", adminError(addr, res, body)
	}
	return body, nextPage(res.Header), nil
}

// adminRequest sends one request to the admin API of --address (or
// --config) and returns its answer, whatever its status, and the address
// it dialed. timeout 0 is none (a stream of progress).
func adminRequest(c *cobra.Command, method, path string, timeout time.Duration) (*http.Response, string, error) {
	return adminRequestWith(c, method, path, nil, timeout)
}

// adminRequestWith is adminRequest with a JSON request body (nil: none).
func adminRequestWith(c *cobra.Command, method, path string, reqBody []byte, timeout time.Duration) (*http.Response, string, error) {
	addr, err := adminAddress(c)
	if err != nil {
		return nil, "", err
	}
	parsed, err := caddy.ParseNetworkAddress(addr)
	if err != nil || parsed.PortRangeSize() > 1 {
		return nil, "", fmt.Errorf("%q is not an admin address such as localhost:2019", addr)
	}
	origin := "http://" + parsed.JoinHostPort(0)
	if parsed.IsUnixNetwork() || parsed.IsFdNetwork() {
		origin = "http://127.0.0.1" // any host: the dialer below ignores it
		// A unix socket's address may end in its permission bits
		// (unix//run/caddy.sock|0220), which are no part of the path:
		// caddycmd.AdminAPIRequest drops them the same way.
		parsed.Host, _, _ = strings.Cut(parsed.Host, "|")
	}
	var rd io.Reader
	if reqBody != nil {
		rd = bytes.NewReader(reqBody)
	}
	req, err := http.NewRequest(method, origin+path, rd)
	if err != nil {
		return nil, "", err
	}
	if reqBody != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if !parsed.IsUnixNetwork() && !parsed.IsFdNetwork() {
		req.Header.Set("Origin", origin) // Caddy's admin API checks it
	}
	client := http.Client{Timeout: timeout, Transport: &http.Transport{
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
		return nil, "", fmt.Errorf("cannot reach Caddy's admin API at %s (is Caddy running, and is that its admin address?): %v", addr, err)
	}
	return res, addr, nil
}

// adminError is a non-2xx answer as a sentence: the API's own message
// when body (or its first line) carries one.
func adminError(addr string, res *http.Response, body []byte) error {
	var apiErr struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &apiErr) == nil && apiErr.Error != "" {
		return fmt.Errorf("%s (admin API, HTTP %d)", apiErr.Error, res.StatusCode)
	}
	return fmt.Errorf("the admin API at %s answered %s", addr, res.Status)
}

// adminAddress is --address, else the admin address of --config, else
// Caddy's default. The config is adapted here rather than by
// caddycmd.LoadConfig, which logs each step to stderr among the output.
func adminAddress(c *cobra.Command) (string, error) {
	address, _ := c.Flags().GetString("address")
	config, _ := c.Flags().GetString("config")
	adapter, _ := c.Flags().GetString("adapter")
	if address != "" || config == "" {
		return caddycmd.DetermineAdminAPIAddress(address, nil, "", "")
	}
	text, err := os.ReadFile(config)
	if err != nil {
		return "", fmt.Errorf("reading the config: %w", err)
	}
	base := strings.ToLower(filepath.Base(config))
	if adapter == "" && filepath.Ext(base) != ".json" && (strings.HasPrefix(base, "caddyfile") || strings.HasSuffix(base, ".caddyfile")) {
		adapter = "caddyfile"
	}
	if adapter != "" {
		a := caddyconfig.GetAdapter(adapter)
		if a == nil {
			return "", fmt.Errorf("unknown config adapter %q", adapter)
		}
		if text, _, err = a.Adapt(text, map[string]any{"filename": config}); err != nil {
			return "", fmt.Errorf("adapting %s: %w", config, err)
		}
	}
	return caddycmd.DetermineAdminAPIAddress("", text, config, adapter)
}

// shortIDLen is the least an id is shortened to: the user part, shared
// by all of one user's ids, and 6 characters of its own.
const shortIDLen = 12 + 6

// shortIDs returns the length to which every id in ids is unique, at
// least shortIDLen.
func shortIDs(ids []string) int {
	for n := shortIDLen; ; n++ {
		seen := map[string]bool{}
		unique := true
		for _, id := range ids {
			p := id[:min(n, len(id))]
			if seen[p] {
				unique = false
				break
			}
			seen[p] = true
		}
		if unique {
			return n
		}
	}
}

// resolveID turns what the user typed for flag into a whole session id:
// a whole id as it is, a prefix of at least shortIDLen characters by
// finding the one session of user it starts (with user, a whole id too
// must be one of that user's).
func resolveID(c *cobra.Command, user, typed, flag string) (string, error) {
	const idLen = 32
	switch {
	case typed == "":
		return "", nil
	case strings.Trim(typed, "0123456789abcdef") != "" || len(typed) > idLen:
		return "", fmt.Errorf("%s %q is not a session id (32 hex digits, or a prefix of at least %d)", flag, typed, shortIDLen)
	case len(typed) == idLen && user == "":
		return typed, nil
	case len(typed) < shortIDLen:
		return "", fmt.Errorf("%s %q is too short: give at least %d characters, as the list shows them", flag, typed, shortIDLen)
	case user == "":
		return "", fmt.Errorf("%s %s is shortened: add --user, whose sessions it is looked up among, or give all 32 characters", flag, typed)
	}
	body, err := adminList(c, "/session-auth/users/"+url.PathEscape(user)+"/sessions", 0)
	if err != nil {
		return "", err
	}
	var list []sessionJSON
	if err := json.Unmarshal(body, &list); err != nil {
		return "", fmt.Errorf("reading the answer: %w", err)
	}
	var found []string
	for _, s := range list {
		if strings.HasPrefix(s.ID, typed) {
			found = append(found, s.ID)
		}
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("%s: no session of %s starts with %s", flag, user, typed)
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("%s: %d sessions of %s start with %s; give more characters", flag, len(found), user, typed)
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
	ids := make([]string, len(list))
	for i, s := range list {
		ids[i] = s.ID
	}
	short := shortIDs(ids)
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
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.ID[:min(short, len(s.ID))], state, dash(device), dash(s.Browser), dash(s.OS),
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
	ids := make([]string, 0, len(evs))
	for _, e := range evs {
		if !slices.Contains(ids, e.SessionID) {
			ids = append(ids, e.SessionID)
		}
	}
	short := shortIDs(ids)
	for _, e := range evs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.At.UTC().Format("2006-01-02 15:04:05Z"), e.Type, dash(e.SessionID[:min(short, len(e.SessionID))]),
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
