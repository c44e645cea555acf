package sessionauth

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// refuseUnknownSubcommands makes `caddy sessions <typo> ...` name the typo
// and the subcommands there are. Without it, a mistyped subcommand reaches
// the parent as an argument, and the parent, which knows none of the
// subcommand's flags, answers `lst --user alice` with "unknown flag:
// --user". The list is read from the registered subcommands, so one added
// later is offered too.
func refuseUnknownSubcommands(cmd *cobra.Command) {
	cmd.SuggestionsMinimumDistance = 2 // "lst" is one edit from "list"
	cmd.Args = func(c *cobra.Command, args []string) error {
		if len(args) > 0 {
			return unknownSubcommand(c, args[0])
		}
		return nil
	}
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		// Subcommands inherit this function: only the parent's own flag
		// errors can hide a mistyped subcommand.
		if c == cmd {
			if args := c.Flags().Args(); len(args) > 0 {
				return unknownSubcommand(c, args[0])
			}
			return fmt.Errorf("%w (flags like this one follow a subcommand: use %s)", err, orList(subcommands(c)))
		}
		return err
	})
}

// unknownSubcommand says which word was not a subcommand, what it may
// have meant, and which subcommands exist.
func unknownSubcommand(c *cobra.Command, typed string) error {
	msg := fmt.Sprintf("unknown subcommand %q", typed)
	if near := c.SuggestionsFor(typed); len(near) > 0 {
		msg += fmt.Sprintf(" (did you mean %s?)", strings.Join(near, " or "))
	}
	return fmt.Errorf("%s: use %s (caddy %s --help)", msg, orList(subcommands(c)), c.Name())
}

// subcommands names c's subcommands as registered, in cobra's order.
func subcommands(c *cobra.Command) []string {
	var names []string
	for _, sub := range c.Commands() {
		if sub.IsAvailableCommand() && sub.Name() != "help" && sub.Name() != "completion" {
			names = append(names, sub.Name())
		}
	}
	return names
}

// orList joins names as a sentence does: "a, b or c".
func orList(names []string) string {
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}
