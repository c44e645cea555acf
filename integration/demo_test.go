package integration

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
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
	env := []string{"BIN_DIR=" + bin, fmt.Sprintf("PORT=%d", port), fmt.Sprintf("ADMIN_PORT=%d", admin), fmt.Sprintf("APP_PORT=%d", app),
		fmt.Sprintf("NOLOGIN_APP_PORT=%d", redisserver.FreePort(t)), "REDIS_URL=", "XDG_DATA_HOME=" + t.TempDir()}
	_, firstOut := demo(t, env)

	site := fmt.Sprintf("http://localhost:%d", port)
	waitForDemo(t, site, firstOut)
	for _, want := range []string{"store: file ", site + "/.auth/sessions", "Where you're signed in", "this machine only", "/.auth/admin   (the admin console: sign in as alice"} {
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

// waitForDemo waits until the demo's hand-off site sends a browser to sign in.
func waitForDemo(t *testing.T, site string, out *lockedBuffer) {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, _ := http.NewRequest("GET", site+"/", nil)
		req.Header.Set("Accept", "text/html")
		res, err := client.Do(req)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 303 && res.Header.Get("Location") == "/login?next=%2F" {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the demo on %s did not come up: %v\n%s", site, err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Two demos side by side, the second on the other ports the advice names
// (here free ones): each keeps its sessions in a file of its own port, so
// both serve sign-ins; each prints one short line per request and keeps
// the full access log in its file.
func TestDemosRunSideBySide(t *testing.T) {
	bin := binaries(t)
	data := t.TempDir() // one data directory: the default store place of both
	var sites []string
	var outs []*lockedBuffer
	for range 2 {
		port := redisserver.FreePort(t)
		env := []string{"BIN_DIR=" + bin, "REDIS_URL=", "XDG_DATA_HOME=" + data, fmt.Sprintf("PORT=%d", port)}
		for _, v := range []string{"SIGNIN_PORT", "ADMIN_PORT", "APP_PORT", "NOLOGIN_APP_PORT", "MAIL_PORT"} {
			env = append(env, fmt.Sprintf("%s=%d", v, redisserver.FreePort(t)))
		}
		_, out := demo(t, env)
		site := fmt.Sprintf("http://localhost:%d", port)
		waitForDemo(t, site, out)
		sites, outs = append(sites, site), append(outs, out)
	}
	client := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for i, site := range sites {
		res, err := client.PostForm(site+"/login", url.Values{"username": {"alice"}, "password": {"demo"}})
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 303 || len(res.Cookies()) == 0 {
			t.Fatalf("signing in at demo %d: %d\n%s", i+1, res.StatusCode, outs[i])
		}
		port := strings.TrimPrefix(site, "http://localhost:")
		store := filepath.Join(data, "caddy", "session_auth", "demo-"+port+".db")
		accessLog := filepath.Join(data, "caddy", "session_auth", "demo-"+port+"-access.log")
		if !strings.Contains(outs[i].String(), "store: file "+store) || !strings.Contains(outs[i].String(), accessLog) {
			t.Errorf("demo %d's banner does not name its store %s and its log %s:\n%s", i+1, store, accessLog, outs[i])
		}
		var line string
		waitUntil(t, 10*time.Second, func() bool {
			for _, l := range strings.Split(outs[i].String(), "\n") {
				if strings.Contains(l, "http.log.access") && strings.Contains(l, `"uri": "/login"`) {
					line = l
				}
			}
			return line != ""
		})
		if strings.Contains(line, "User-Agent") || strings.Contains(line, "remote_port") || len(line) > 250 {
			t.Errorf("demo %d's terminal line is not short (%d characters): %s", i+1, len(line), line)
		}
		waitUntil(t, 10*time.Second, func() bool {
			b, _ := os.ReadFile(accessLog)
			return strings.Contains(string(b), `"uri":"/login"`) && strings.Contains(string(b), `"User-Agent":["Go-http-client`)
		})
	}
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
