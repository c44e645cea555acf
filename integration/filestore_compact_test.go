package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sessionauth/caddy-sessionauth/internal/redisserver"
	"github.com/sessionauth/caddy-sessionauth/session"
)

// docsStorePath is the store's path in the runbook's commands.
const docsStorePath = "/var/lib/caddy/.local/share/caddy/session_auth/sessions.db"

// recipe is the commands of the fenced blocks of the runbook's section
// titled heading, block by block.
func recipe(t *testing.T, heading string) [][]string {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("..", "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(doc), "\n"+heading+"\n")
	if !ok {
		t.Fatalf("docs/operations.md has no section %q", heading)
	}
	if end := regexp.MustCompile(`\n##+ `).FindStringIndex(section); end != nil {
		section = section[:end[0]]
	}
	var blocks [][]string
	parts := strings.Split(section, "```")
	for i := 1; i < len(parts); i += 2 {
		var lines []string
		for _, l := range strings.Split(strings.TrimSpace(parts[i]), "\n") {
			if l = strings.TrimSpace(l); l != "" {
				lines = append(lines, l)
			}
		}
		blocks = append(blocks, lines)
	}
	return blocks
}

// growThenExpire adds expired sessions to the store file at path (no
// Caddy running on it) until it is at least 4 MiB, and sweeps them: the
// file keeps its size.
func growThenExpire(t *testing.T, path string) {
	t.Helper()
	f, err := session.OpenFile(path, nil, session.FileOptions{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	p := session.Policy{Lifetime: time.Hour, IdleTimeout: time.Hour, TouchInterval: time.Minute, Retention: time.Hour}
	long := time.Now().Add(-30 * 24 * time.Hour)
	for i := 0; ; i++ {
		user := fmt.Sprintf("gone-%08x@example.com", uint32(i)*2654435761)
		id, _, hash, err := f.NewCredential(context.Background(), user)
		if err != nil {
			t.Fatal(err)
		}
		at := long.Add(time.Duration(i) * time.Millisecond)
		s := &session.Session{ID: id, UserID: user, TokenHash: hash, Email: user, IP: "198.51.100.7", LoginIP: "198.51.100.7",
			UserAgent: "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
			CreatedAt: at, LastActiveAt: at}
		if _, err := f.Create(context.Background(), s, p, session.Limit{}); err != nil {
			t.Fatal(err)
		}
		if i%500 == 499 {
			if fi, _ := os.Stat(path); fi.Size() >= 4<<20 {
				break
			}
		}
	}
	if err := f.Sweep(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Size() < 4<<20 {
		t.Fatalf("the file shrank on its own to %d bytes", fi.Size())
	}
}

var compacted = regexp.MustCompile(`compacted (\S+).*: (\d+) bytes before, (\d+) after`)

// checkCompacted: the command's output says the file went from at
// least 4 MiB to less than 256 KiB, which is its size now.
func checkCompacted(t *testing.T, out, path string) {
	t.Helper()
	m := compacted.FindStringSubmatch(out)
	if m == nil || m[1] != path {
		t.Fatalf("the compaction's output does not name %s with the sizes:\n%s", path, out)
	}
	before, _ := strconv.ParseInt(m[2], 10, 64)
	after, _ := strconv.ParseInt(m[3], 10, 64)
	fi, err := os.Stat(path)
	if err != nil || before < 4<<20 || after >= 256<<10 || fi.Size() != after {
		t.Fatalf("compacted from %d to %d bytes, the file has %v (%v)", before, after, fi.Size(), err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("the compacted file's mode: %v", fi.Mode())
	}
}

// The runbook's "Compact the file", as it is written there, with the
// real caddy binary: online, a file grown to 4 MiB whose sessions
// expired shrinks under 256 KiB while Caddy serves, a session signed in
// before is still signed in, and sign-ins go on; offline, the command
// refuses the file while Caddy runs, then (Caddy stopped, the file
// grown again) compacts it, and Caddy starts on it with both sessions.
func TestFileStoreCompactRecipe(t *testing.T) {
	blocks := recipe(t, "### Compact the file")
	if len(blocks) != 2 || len(blocks[0]) != 1 || len(blocks[1]) != 3 {
		t.Fatalf("the recipe's blocks changed, change this test with them: %q", blocks)
	}
	online, offline := blocks[0], blocks[1]
	if online[0] != "caddy sessions compact" || offline[0] != "systemctl stop caddy" || offline[2] != "systemctl start caddy" ||
		!strings.HasPrefix(offline[1], "caddy sessions compact --file ") {
		t.Fatalf("the recipe's commands changed, change this test with them: %q", blocks)
	}
	path := filepath.Join(t.TempDir(), "state", "sessions.db")
	// The runbook's command line, on this test's file.
	cli := func(line string, extra ...string) (string, error) {
		line = strings.ReplaceAll(line, docsStorePath, path)
		args := append(strings.Fields(strings.TrimPrefix(line, "caddy ")), extra...)
		return caddyCLI(t, t.TempDir(), args...)
	}
	dataDir := t.TempDir()
	up := newUpstream(t)
	port, adminPort := redisserver.FreePort(t), redisserver.FreePort(t)
	config := fileStoreConfig(port, adminPort, path, up.addr)
	g := &gateway{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", port), admin: fmt.Sprintf("http://127.0.0.1:%d", adminPort), port: port}
	address := fmt.Sprintf("127.0.0.1:%d", adminPort)

	growThenExpire(t, path)
	running := startCaddyProcess(t, config, dataDir)
	running.waitServing(t, g.base)
	user := "compact-" + randomID()
	before, after := newClient(t, g), newClient(t, g)
	before.signIn(user)

	out, err := cli(online[0], "--address", address)
	if err != nil {
		t.Fatalf("%s: %v\n%s", online[0], err, out)
	}
	checkCompacted(t, out, path)
	if res := before.do("GET", "/"); res.StatusCode != 200 || res.headers["X-Auth-User"] != user {
		t.Fatalf("a session signed in before the compaction: %d", res.StatusCode)
	}
	after.signIn(user)

	out, err = cli(offline[1])
	if err == nil || !strings.Contains(out, "open in a running Caddy") || !strings.Contains(out, "caddy sessions compact` (without --file)") {
		t.Fatalf("%s while Caddy runs on the file: %v\n%s", offline[1], err, out)
	}

	running.kill() // systemctl stop caddy
	growThenExpire(t, path)
	out, err = cli(offline[1])
	if err != nil {
		t.Fatalf("%s: %v\n%s", offline[1], err, out)
	}
	checkCompacted(t, out, path)
	restarted := startCaddyProcess(t, config, dataDir) // systemctl start caddy
	restarted.waitServing(t, g.base)
	for _, c := range []*client{before, after} {
		if res := c.do("GET", "/"); res.StatusCode != 200 || res.headers["X-Auth-User"] != user {
			t.Fatalf("a session after the offline compaction: %d", res.StatusCode)
		}
	}
}
