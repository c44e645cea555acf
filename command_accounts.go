package sessionauth

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

// accountsCommand is `caddy sessions accounts`: the stored accounts
// (SPEC 15) on the admin API's /session-auth/accounts.
func accountsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "accounts add|list|show|disable|enable|remove|reset",
		Short: "Manage the stored accounts (sign_in accounts { stored })",
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) > 0 {
				return fmt.Errorf("unknown subcommand %q: use add, list, show, disable, enable, remove or reset (caddy sessions accounts --help)", args[0])
			}
			return c.Help()
		},
	}
	path := func(user string) string { return "/session-auth/accounts/" + url.PathEscape(user) }

	add := &cobra.Command{
		Use: "add <user> [--email <address>] [--name <text>] [--roles <r1,r2>]", Short: "Create an account and print its invitation",
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			email, _ := c.Flags().GetString("email")
			name, _ := c.Flags().GetString("name")
			roles, _ := c.Flags().GetString("roles")
			req, _ := json.Marshal(map[string]string{"user_id": args[0], "email": email, "name": name, "roles": roles})
			body, _, err := adminCallWith(c, http.MethodPost, "/session-auth/accounts", req)
			if err != nil {
				return err
			}
			return printInvite(c, body, "created account")
		},
	}
	add.Flags().String("email", "", "Email address")
	add.Flags().String("name", "", "Display name")
	add.Flags().String("roles", "", "Roles, comma-separated")

	list := &cobra.Command{
		Use: "list", Short: "List the stored accounts", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			body, err := adminList(c, "/session-auth/accounts", 0)
			if err != nil {
				return err
			}
			if asJSON(c) {
				return printJSON(c, body)
			}
			var accts []adminAccountJSON
			if err := json.Unmarshal(body, &accts); err != nil {
				return fmt.Errorf("reading the answer: %w", err)
			}
			return printAccounts(c, accts)
		},
	}

	show := &cobra.Command{
		Use: "show <user>", Short: "Show one stored account", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			body, _, err := adminCall(c, http.MethodGet, path(args[0]))
			if err != nil {
				return err
			}
			if asJSON(c) {
				return printJSON(c, body)
			}
			var a adminAccountJSON
			if err := json.Unmarshal(body, &a); err != nil {
				return fmt.Errorf("reading the answer: %w", err)
			}
			return printAccounts(c, []adminAccountJSON{a})
		},
	}

	setDisabled := func(use, short, done string, disabled bool) *cobra.Command {
		return &cobra.Command{
			Use: use + " <user>", Short: short, Args: cobra.ExactArgs(1),
			RunE: func(c *cobra.Command, args []string) error {
				req, _ := json.Marshal(map[string]bool{"disabled": disabled})
				body, _, err := adminCallWith(c, http.MethodPatch, path(args[0]), req)
				if err != nil {
					return err
				}
				if asJSON(c) {
					return printJSON(c, body)
				}
				fmt.Fprintf(c.OutOrStdout(), "%s %s\n", done, args[0])
				return nil
			},
		}
	}
	disable := setDisabled("disable", "Disable an account: its sessions and API tokens end, it cannot sign in", "disabled", true)
	enable := setDisabled("enable", "Enable a disabled account", "enabled", false)

	remove := &cobra.Command{
		Use: "remove <user> --yes", Short: "Delete an account: its sessions and API tokens end", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if yes, _ := c.Flags().GetBool("yes"); !yes {
				return fmt.Errorf("nothing removed: give --yes to delete the account %s", args[0])
			}
			body, _, err := adminCallWith(c, http.MethodDelete, path(args[0]), nil)
			if err != nil {
				return err
			}
			if asJSON(c) {
				return printJSON(c, body)
			}
			var res struct {
				Revoked []string `json:"revoked"`
			}
			if err := json.Unmarshal(body, &res); err != nil {
				return fmt.Errorf("reading the answer: %w", err)
			}
			fmt.Fprintf(c.OutOrStdout(), "removed account %s; ended %d session(s) and token(s)\n", args[0], len(res.Revoked))
			return nil
		},
	}
	remove.Flags().Bool("yes", false, "Really delete the account")

	reset := &cobra.Command{
		Use: "reset <user> [--second-factor]", Short: "Remove the password, end the sessions and print a new invitation", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			sf, _ := c.Flags().GetBool("second-factor")
			req, _ := json.Marshal(map[string]bool{"second_factor": sf})
			body, _, err := adminCallWith(c, http.MethodPost, path(args[0])+"/reset", req)
			if err != nil {
				return err
			}
			return printInvite(c, body, "reset account")
		},
	}
	reset.Flags().Bool("second-factor", false, "Also remove the TOTP, passkeys and recovery codes")

	cmd.AddCommand(add, list, show, disable, enable, remove, reset)
	return cmd
}

// printInvite prints an invitation the admin API answered.
func printInvite(c *cobra.Command, body []byte, what string) error {
	if asJSON(c) {
		return printJSON(c, body)
	}
	var inv inviteJSON
	if err := json.Unmarshal(body, &inv); err != nil || inv.Invite == "" {
		return errors.New("reading the answer: no invitation in it")
	}
	link := inv.InviteURL
	if link == "" {
		link = inv.Invite + "   (a path on the site: prefix it with the site's address)"
	}
	fmt.Fprintf(c.OutOrStdout(), "%s %s\ninvitation (works once, until %s):\n  %s\n", what, inv.UserID, shortTime(inv.ExpiresAt), link)
	return nil
}

func printAccounts(c *cobra.Command, accts []adminAccountJSON) error {
	tw := tabwriter.NewWriter(c.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USER\tEMAIL\tNAME\tROLES\tSTATE\tPASSWORD\tTOTP\tPASSKEYS\tRECOVERY\tCREATED\tLAST SIGN-IN")
	yes := func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	}
	for _, a := range accts {
		state, last := "enabled", "never"
		if a.Disabled {
			state = "disabled"
		}
		if a.LastSignInAt != nil {
			last = shortTime(*a.LastSignInAt)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\n", a.UserID, dash(a.Email), dash(a.Name), dash(strings.Join(a.Roles, ",")),
			state, yes(a.Password), yes(a.TOTP), a.Passkeys, a.RecoveryCodesLeft, shortTime(a.CreatedAt), last)
	}
	if len(accts) == 0 {
		fmt.Fprintln(tw, "(no accounts)")
	}
	return tw.Flush()
}
