package sessionauth

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/sessionauth/caddy-sessionauth/session"
)

// fileCommands are the subcommands for the file store's file:
// a hot backup through the running Caddy's admin API, an offline
// salvage of a damaged file, and compaction (online or offline).
func fileCommands() []*cobra.Command {
	backup := &cobra.Command{
		Use:   "backup <file>",
		Short: "Copy the running Caddy's file store to a new file, consistently, while it serves",
		Long: `Asks the running Caddy (its admin API, as 'caddy reload' finds it) for a
consistent copy of its file store and writes it to <file>, which must not
exist. The copy is checked (every page, as at start) before it takes its
name. To restore: stop Caddy, put the copy at the store's path (mode
0600), start Caddy.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error { return runBackup(c, args[0]) },
	}
	backup.Flags().String("path", "", "With several file stores in the config: the store's path")

	salvage := &cobra.Command{
		Use:   "salvage <damaged> <new>",
		Short: "Copy what is readable of a damaged file store into a new file",
		Long: `Works on files, with Caddy stopped (the damaged file must not be in use).
Reads the damaged store bucket by bucket, key by key, going on past pages
that cannot be read, and writes what it read to <new> (which must not
exist, mode 0600), then checks <new>. Put <new> at the store's path and
start Caddy. A session whose entry in its user's index was lost is
refused (it could not be signed out everywhere), never taken as valid.`,
		Args: cobra.ExactArgs(2),
		RunE: func(c *cobra.Command, args []string) error { return runSalvage(c, args[0], args[1]) },
	}
	compact := &cobra.Command{
		Use:   "compact [--file <store file>]",
		Short: "Give the file store's space back: copy what it holds into a compacted file",
		Long: `The file store reuses the space of expired sessions but never gives it back
to the disk. Compaction copies what the file holds, in order and with its
pages filled, into a new file that takes the store's path.

Without --file it asks the running Caddy (its admin API, as 'caddy reload'
finds it) to compact its open store: reads go on, writes wait until the
copy is in place. With --file it compacts a file that no running Caddy has
open (one that has is refused). Either way it prints the file's size
before and after.`,
		Args: cobra.NoArgs,
		RunE: runCompact,
	}
	compact.Flags().String("file", "", "Compact this store file, offline (Caddy not running on it)")
	compact.Flags().String("path", "", "Online, with several file stores in the config: the store's path")
	return []*cobra.Command{backup, salvage, compact}
}

// compactTimeout bounds the wait for the running Caddy's compaction,
// which copies what the store holds (seconds for a million sessions).
const compactTimeout = 10 * time.Minute

func runCompact(c *cobra.Command, _ []string) error {
	out := c.OutOrStdout()
	if file, _ := c.Flags().GetString("file"); file != "" {
		rep, err := session.CompactFile(file)
		if err != nil {
			return fmt.Errorf("compacting %s: %w", file, err)
		}
		fmt.Fprintf(out, "compacted %s: %d bytes before, %d after\n", rep.Path, rep.Before, rep.After)
		return nil
	}
	uri := "/session-auth/compact"
	if p, _ := c.Flags().GetString("path"); p != "" {
		uri += "?path=" + url.QueryEscape(p)
	}
	res, addr, err := adminRequest(c, http.MethodPost, uri, compactTimeout)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("reading the admin API's answer: %w", err)
	}
	if res.StatusCode/100 != 2 {
		return adminError(addr, res, body)
	}
	var rep compactResult
	if err := json.Unmarshal(body, &rep); err != nil {
		return fmt.Errorf("the admin API's answer: %w", err)
	}
	fmt.Fprintf(out, "compacted %s (in the running Caddy): %d bytes before, %d after\n", rep.Path, rep.BytesBefore, rep.BytesAfter)
	return nil
}

func runBackup(c *cobra.Command, target string) error {
	if _, err := os.Stat(target); err == nil {
		return fmt.Errorf("%s exists: give a new file to back up into", target)
	}
	addr, err := adminAddress(c)
	if err != nil {
		return err
	}
	uri := "/session-auth/backup"
	if p, _ := c.Flags().GetString("path"); p != "" {
		uri += "?path=" + url.QueryEscape(p)
	}
	res, err := caddycmd.AdminAPIRequest(addr, http.MethodGet, uri, nil, nil)
	if err != nil {
		return fmt.Errorf("asking Caddy's admin API at %s for the copy: %w", addr, err)
	}
	defer res.Body.Close()
	tmp, err := os.CreateTemp(filepath.Dir(target), "."+filepath.Base(target)+".*.part")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // gone once renamed; else not left behind
	n, err := io.Copy(tmp, res.Body)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing the copy: %w", err)
	}
	if err := os.Chmod(tmp.Name(), 0o600); err != nil {
		return err
	}
	if err := session.CheckFile(tmp.Name()); err != nil {
		return fmt.Errorf("the copy did not pass its check, nothing was written to %s: %w", target, err)
	}
	if err := os.Link(tmp.Name(), target); err != nil { // fails, rather than replaces, if target appeared meanwhile
		return err
	}
	fmt.Fprintf(c.OutOrStdout(), "backed up %s (%d bytes, checked) to %s\n", res.Header.Get("X-Store-Path"), n, target)
	return nil
}

func runSalvage(c *cobra.Command, from, to string) error {
	rep, err := session.Salvage(from, to)
	names := make([]string, 0, len(rep.Copied))
	for name := range rep.Copied {
		names = append(names, name)
	}
	slices.Sort(names)
	out := c.OutOrStdout()
	for _, name := range names {
		line := fmt.Sprintf("  %-9s %d keys", name, rep.Copied[name])
		if why, ok := rep.Lost[name]; ok {
			line += "; some could not be read: " + why
		}
		fmt.Fprintln(out, line)
	}
	if err != nil {
		return fmt.Errorf("salvaging %s: %w", from, err)
	}
	if len(rep.Lost) == 0 {
		fmt.Fprintf(out, "salvaged everything of %s into %s\n", from, to)
	} else {
		fmt.Fprintf(out, "salvaged what was readable of %s into %s\n", from, to)
	}
	fmt.Fprintln(out, "to use it: with Caddy stopped, move it to the store's path and start Caddy")
	return nil
}
