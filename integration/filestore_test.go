package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/sessionauth/caddy-sessionauth/internal/redisserver"
	"github.com/sessionauth/caddy-sessionauth/session"
)

// caddyCLI runs the built caddy with args and returns its output.
func caddyCLI(t *testing.T, dataDir string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binaries(t), "caddy"), args...)
	cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+dataDir, "XDG_CONFIG_HOME="+dataDir)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func fileStoreConfig(port, adminPort int, storePath, upstream string) string {
	return fmt.Sprintf(`{
	admin 127.0.0.1:%d
	persist_config off
	auto_https off
}
http://127.0.0.1:%d {
	session_auth {
		store file %s
		max_sessions 0
	}
	reverse_proxy %s
}
`, adminPort, port, storePath, upstream)
}

// The runbook's file store recipes, with the real caddy binary: `caddy
// validate` passes while the same config runs (Provision takes no lock),
// a second `caddy run` on the same file fails at start naming it,
// `caddy sessions backup` copies the running store, a restore of that
// copy brings back what it held, and a damaged file stops Caddy with the
// salvage command, which `caddy sessions salvage` then carries out.
func TestFileStoreRecipes(t *testing.T) {
	dataDir := t.TempDir()
	storePath := filepath.Join(t.TempDir(), "state", "sessions.db")
	up := newUpstream(t)
	port, adminPort := redisserver.FreePort(t), redisserver.FreePort(t)
	config := fileStoreConfig(port, adminPort, storePath, up.addr)
	cfPath := filepath.Join(t.TempDir(), "Caddyfile")
	if err := os.WriteFile(cfPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	g := &gateway{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", port), admin: fmt.Sprintf("http://127.0.0.1:%d", adminPort), port: port}
	first := startCaddyProcess(t, config, dataDir)
	first.waitServing(t, g.base)
	user := "ops-" + randomID()
	before, after := newClient(t, g), newClient(t, g)
	before.signIn(user)

	// validate: the running Caddy holds the file's lock.
	if out, err := caddyCLI(t, dataDir, "validate", "--config", cfPath, "--adapter", "caddyfile"); err != nil {
		t.Fatalf("caddy validate while the config runs: %v\n%s", err, out)
	}
	// A second Caddy on the same file fails at start, naming it.
	other := startCaddyProcess(t, fileStoreConfig(redisserver.FreePort(t), redisserver.FreePort(t), storePath, up.addr), t.TempDir())
	select {
	case <-other.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("a second Caddy on the same file did not exit: %s", other.output)
	}
	if out := other.output.String(); other.cmd.ProcessState.Success() || !strings.Contains(out, storePath) || !strings.Contains(out, "another process holds it") {
		t.Fatalf("the second Caddy's exit does not name the file and the cause:\n%s", out)
	}

	// Backup while it serves, then a sign-in the backup does not hold.
	backup := filepath.Join(t.TempDir(), "backup.db")
	out, err := caddyCLI(t, dataDir, "sessions", "backup", backup, "--address", fmt.Sprintf("127.0.0.1:%d", adminPort))
	if err != nil || !strings.Contains(out, "checked") {
		t.Fatalf("caddy sessions backup: %v\n%s", err, out)
	}
	if fi, err := os.Stat(backup); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the backup: %v %v", fi, err)
	}
	after.signIn(user)

	// Restore (docs/operations.md): stop Caddy, put the copy in place,
	// start Caddy.
	first.kill()
	if err := copyFile(backup, storePath); err != nil {
		t.Fatal(err)
	}
	restored := startCaddyProcess(t, config, dataDir)
	restored.waitServing(t, g.base)
	if res := before.do("GET", "/"); res.StatusCode != 200 || res.headers["X-Auth-User"] != user {
		t.Fatalf("a session the backup holds, after the restore: %d", res.StatusCode)
	}
	if res := after.do("GET", "/"); res.StatusCode != 401 {
		t.Fatalf("a session signed in after the backup, after the restore: %d", res.StatusCode)
	}
	restored.kill()

	// A damaged page: Caddy stops at start naming the file and the
	// salvage command; salvage makes a file it starts on.
	damage(t, storePath)
	broken := startCaddyProcess(t, config, dataDir)
	select {
	case <-broken.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("Caddy started on a damaged file: %s", broken.output)
	}
	salvageCmd := "caddy sessions salvage " + storePath + " " + storePath + ".salvaged"
	if out := broken.output.String(); !strings.Contains(out, salvageCmd) {
		t.Fatalf("Caddy's exit on a damaged file does not give %q:\n%s", salvageCmd, out)
	}
	if out, err := caddyCLI(t, dataDir, "sessions", "salvage", storePath, storePath+".salvaged"); err != nil {
		t.Fatalf("caddy sessions salvage: %v\n%s", err, out)
	}
	if err := os.Rename(storePath+".salvaged", storePath); err != nil {
		t.Fatal(err)
	}
	again := startCaddyProcess(t, config, dataDir)
	again.waitServing(t, g.base)
	if res := before.do("GET", "/"); res.StatusCode != 200 && res.StatusCode != 401 {
		t.Fatalf("after the salvage: %d", res.StatusCode)
	}
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o600)
}

// damage zeroes the root page of the sessions bucket, which every read
// of a session goes through.
func damage(t *testing.T, path string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var root int64
	err = db.View(func(tx *bolt.Tx) error {
		root = int64(tx.Bucket([]byte("sessions")).Root())
		return nil
	})
	size := db.Info().PageSize
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	fd, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	if _, err := fd.WriteAt(make([]byte, size), root*int64(size)); err != nil {
		t.Fatal(err)
	}
}

// `caddy sessions backup` while sign-ins go on: the copy passes the
// consistency check, opens as a store and holds every session signed in
// before the backup began.
func TestFileStoreBackupUnderLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sessions.db")
	g := loadCaddy(t, site("store file "+path+"\nmax_sessions 0"), newUpstream(t))
	addr := strings.TrimPrefix(g.admin, "http://")
	user := "backup-" + randomID()
	var mu sync.Mutex
	var ids []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				c := newClient(t, g)
				c.signIn(user)
				mu.Lock()
				ids = append(ids, strings.SplitN(c.cookie, ".", 2)[0])
				mu.Unlock()
			}
		}()
	}
	waitUntil(t, 30*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(ids) >= 100 })
	mu.Lock()
	before := slices.Clone(ids)
	mu.Unlock()
	backup := filepath.Join(t.TempDir(), "backup.db")
	out, err := runCLI(t, "backup", backup, "--address", addr)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	if err := session.CheckFile(backup); err != nil {
		t.Fatal(err)
	}
	f, err := session.OpenFile(backup, nil, session.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, id := range before {
		if _, err := f.Get(context.Background(), id); err != nil {
			t.Fatalf("session %s, signed in before the backup: %v", id, err)
		}
	}
	if out, err := runCLI(t, "backup", backup, "--address", addr); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("a backup over an existing file: %v\n%s", err, out)
	}
}
