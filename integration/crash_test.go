package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessionauth/caddy-sessionauth/internal/redisserver"
)

// caddyProcess is `caddy run` in a process of its own.
type caddyProcess struct {
	cmd    *exec.Cmd
	output *bytes.Buffer
	exited chan struct{}
}

// startCaddyProcess runs the built Caddy on a Caddyfile, with dataDir as
// its data directory.
func startCaddyProcess(t *testing.T, caddyfile, dataDir string) *caddyProcess {
	t.Helper()
	cfPath := filepath.Join(t.TempDir(), "Caddyfile")
	if err := os.WriteFile(cfPath, []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &caddyProcess{output: &bytes.Buffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(filepath.Join(binaries(t), "caddy"), "run", "--config", cfPath, "--adapter", "caddyfile")
	p.cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+dataDir, "XDG_CONFIG_HOME="+dataDir)
	out := &lockedWriter{w: p.output}
	p.cmd.Stdout, p.cmd.Stderr = out, out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() { p.kill() })
	return p
}

func (p *caddyProcess) kill() {
	_ = p.cmd.Process.Kill() // SIGKILL: no shutdown, no flush, nothing
	<-p.exited
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// waitServing waits until the gateway answers, or the process exits.
func (p *caddyProcess) waitServing(t *testing.T, base string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if res, err := http.Get(base + "/.auth/me"); err == nil {
			res.Body.Close()
			return
		}
		select {
		case <-p.exited:
			t.Fatalf("caddy exited: %s", p.output)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("caddy not serving within 30s: %s", p.output)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// holdingHook is a webhook receiver that holds every delivery open until
// released, then answers 204 and counts them per session.
type holdingHook struct {
	addr    string
	release chan struct{}
	mu      sync.Mutex
	arrived map[string]int // deliveries that reached it
	done    map[string]int // deliveries it answered
	gone    map[string]int // deliveries whose sender died while held
}

func newHoldingHook(t *testing.T) *holdingHook {
	hk := &holdingHook{release: make(chan struct{}), arrived: map[string]int{}, done: map[string]int{}, gone: map[string]int{}}
	hk.addr = serveLocal(t, hk)
	return hk
}

func (hk *holdingHook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var n map[string]string
	body, _ := io.ReadAll(r.Body)
	_ = json.Unmarshal(body, &n)
	key := n["event"] + ":" + n["session_id"]
	hk.mu.Lock()
	hk.arrived[key]++
	hk.mu.Unlock()
	select {
	case <-hk.release:
	case <-r.Context().Done():
		hk.mu.Lock()
		hk.gone[key]++
		hk.mu.Unlock()
		return // the sender died
	}
	hk.mu.Lock()
	hk.done[key]++
	hk.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (hk *holdingHook) count(m map[string]int, key string) int {
	hk.mu.Lock()
	defer hk.mu.Unlock()
	return m[key]
}

// The file store through a real Caddy process killed with SIGKILL: a
// session signed in before the kill still works after the restart, one
// revoked just before the kill stays revoked, the notice of that
// revocation (queued, its delivery under way at the kill) is delivered
// once after the restart, and a second Caddy on the same file refuses to
// start, naming the file.
func TestFileStoreSurvivesKill9(t *testing.T) {
	dataDir := t.TempDir()
	storePath := filepath.Join(t.TempDir(), "state", "sessions.db")
	hk := newHoldingHook(t)
	up := newUpstream(t)
	port, adminPort := redisserver.FreePort(t), redisserver.FreePort(t)
	config := func(port, adminPort int) string {
		return fmt.Sprintf(`{
	admin 127.0.0.1:%d
	persist_config off
	auto_https off
}
http://127.0.0.1:%d {
	session_auth {
		store file %s
		max_sessions 0
		notify http://%s/hook {
			events revoke
		}
	}
	reverse_proxy %s
}
`, adminPort, port, storePath, hk.addr, up.addr)
	}
	g := &gateway{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", port), admin: fmt.Sprintf("http://127.0.0.1:%d", adminPort), port: port}

	first := startCaddyProcess(t, config(port, adminPort), dataDir)
	first.waitServing(t, g.base)
	user := "crash-" + randomID()
	kept, revoked := newClient(t, g), newClient(t, g)
	kept.signIn(user)
	revoked.signIn(user)
	if res := kept.do("GET", "/"); res.StatusCode != 200 || res.headers["X-Auth-User"] != user {
		t.Fatalf("before the kill: %d %v", res.StatusCode, res.headers)
	}
	revokedID := strings.SplitN(revoked.cookie, ".", 2)[0]
	if code, body := g.adminDo("DELETE", "/session-auth/sessions/"+revokedID, ""); code != 200 {
		t.Fatalf("revoke: %d %s", code, body)
	}
	// The revocation's notice reached the webhook, which holds it: its
	// delivery is under way, not acknowledged, when Caddy dies.
	notice := "revoke:" + revokedID
	waitUntil(t, 20*time.Second, func() bool { return hk.count(hk.arrived, notice) == 1 })
	first.kill()
	// Released only once the hook saw the killed sender go: released
	// earlier, it could answer the dead connection and count a delivery
	// nobody received.
	waitUntil(t, 20*time.Second, func() bool { return hk.count(hk.gone, notice) == 1 })
	close(hk.release) // from now on the webhook answers at once
	second := startCaddyProcess(t, config(port, adminPort), dataDir)
	second.waitServing(t, g.base)
	if res := kept.do("GET", "/"); res.StatusCode != 200 || res.headers["X-Auth-User"] != user {
		t.Fatalf("the session signed in before kill -9: %d %v", res.StatusCode, res.headers)
	}
	if res := revoked.do("GET", "/"); res.StatusCode != 401 {
		t.Fatalf("the session revoked before kill -9 answered %d", res.StatusCode)
	}
	waitUntil(t, 30*time.Second, func() bool { return hk.count(hk.done, notice) == 1 })

	// A second Caddy on the same file: it fails at start, saying why.
	other := startCaddyProcess(t, config(redisserver.FreePort(t), redisserver.FreePort(t)), t.TempDir())
	select {
	case <-other.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("a second Caddy on the same file did not exit: %s", other.output)
	}
	if other.cmd.ProcessState.Success() {
		t.Fatal("a second Caddy on the same file exited with success")
	}
	out := other.output.String()
	if !strings.Contains(out, storePath) || !strings.Contains(out, "another process holds it") {
		t.Fatalf("the second Caddy's error does not name the file and the cause:\n%s", out)
	}
	// The first keeps serving, and delivered the notice once only.
	if res := kept.do("GET", "/"); res.StatusCode != 200 {
		t.Fatalf("after the second Caddy failed: %d", res.StatusCode)
	}
	if n := hk.count(hk.arrived, notice); n != 2 { // the held one, and the one after the restart
		t.Fatalf("the notice reached the webhook %d times", n)
	}
	if n := hk.count(hk.done, notice); n != 1 {
		t.Fatalf("the notice was delivered %d times", n)
	}
}
