package integration

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sessionauth/caddy-sessionauth/internal/redisserver"
)

var built struct {
	once sync.Once
	dir  string
	err  error
}

// binaries builds bin/caddy and bin/demoapp as `make build` does, once per
// test run, into a directory of its own.
func binaries(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		built.dir, built.err = os.MkdirTemp("", "sessionauth-bin-")
		if built.err != nil {
			return
		}
		for _, b := range [][2]string{{"caddy", "./cmd/caddy"}, {"demoapp", "./examples/demoapp/cmd/demoapp"}} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(built.dir, b[0]), b[1])
			cmd.Dir = ".."
			if out, err := cmd.CombinedOutput(); err != nil {
				built.err = fmt.Errorf("go build %s: %v\n%s", b[1], err, out)
				return
			}
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.dir
}

// lockedBuffer collects a process's output while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// demo starts examples/demo.sh on the given ports; it is stopped, with
// everything it started, when the test ends.
func demo(t *testing.T, env []string) (*exec.Cmd, *lockedBuffer) {
	t.Helper()
	cmd := exec.Command("./examples/demo.sh")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		_ = cmd.Wait()
	})
	return cmd, out
}

// A second `make demo` beside a running one fails at once and names each
// port and the process holding it; the demo listens on this machine only.
func TestDemoRefusesBusyPorts(t *testing.T) {
	bin := binaries(t)
	port, admin, app := redisserver.FreePort(t), redisserver.FreePort(t), redisserver.FreePort(t)
	env := []string{"BIN_DIR=" + bin, fmt.Sprintf("PORT=%d", port), fmt.Sprintf("ADMIN_PORT=%d", admin), fmt.Sprintf("APP_PORT=%d", app), "REDIS_URL="}
	_, firstOut := demo(t, env)

	site := fmt.Sprintf("http://localhost:%d", port)
	client := &http.Client{Timeout: 2 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, _ := http.NewRequest("GET", site+"/", nil)
		req.Header.Set("Accept", "text/html")
		res, err := client.Do(req)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 303 && res.Header.Get("Location") == "/login?next=%2F" {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the first demo did not come up: %v\n%s", err, firstOut)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, want := range []string{"store: file ", site + "/.auth/sessions", "Where you're signed in", "this machine only"} {
		if !strings.Contains(firstOut.String(), want) {
			t.Errorf("the banner lacks %q:\n%s", want, firstOut)
		}
	}

	second, secondOut := demo(t, env)
	done := make(chan error, 1)
	go func() { done <- second.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatalf("the second demo succeeded:\n%s", secondOut)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("the second demo did not fail fast:\n%s", secondOut)
	}
	for _, want := range []string{
		fmt.Sprintf("port %d (the site) is in use by caddy (pid ", port),
		fmt.Sprintf("port %d (Caddy's admin API) is in use by caddy (pid ", admin),
		fmt.Sprintf("port %d (the demo app) is in use by demoapp (pid ", app),
	} {
		if !strings.Contains(secondOut.String(), want) {
			t.Errorf("the second demo's message lacks %q:\n%s", want, secondOut)
		}
	}
	if strings.Contains(secondOut.String(), "session_auth demo (store") {
		t.Errorf("the second demo went on to start:\n%s", secondOut)
	}

	// Localhost only: not reachable on the machine's other addresses.
	addrs, _ := net.InterfaceAddrs()
	tried := 0
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok || ipn.IP.IsLoopback() || ipn.IP.IsLinkLocalUnicast() {
			continue
		}
		tried++
		for _, p := range []int{port, app} {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", net.JoinHostPort(ipn.IP.String(), fmt.Sprint(p)))
			cancel()
			if err == nil {
				conn.Close()
				t.Errorf("the demo answers on %s port %d, not on localhost only", ipn.IP, p)
			}
		}
	}
	t.Logf("checked %d non-loopback addresses", tried)
}

// `caddy sessions --config` reads the admin address from the config
// without printing Caddy's log lines among its output.
func TestCLIConfigPrintsNoLogLines(t *testing.T) {
	bin := binaries(t)
	g := loadCaddy(t, site("store memory"), newUpstream(t))
	newClient(t, g).signIn("quiet")
	cfg := filepath.Join(t.TempDir(), "Caddyfile")
	admin := strings.TrimPrefix(g.admin, "http://")
	if err := os.WriteFile(cfg, []byte("{\n\tadmin "+admin+"\n}\n:0 {\n\trespond ok\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(bin, "caddy"), "sessions", "list", "--user", "quiet", "--config", cfg)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v\n%s%s", err, stdout.String(), stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "SESSION") || !strings.Contains(lines[1], " active ") || stderr.Len() != 0 {
		t.Fatalf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	}
}
