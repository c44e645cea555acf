// Package redisserver starts real redis-server processes on free loopback
// ports for tests. It never touches a Redis that was already running.
package redisserver

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Server is one redis-server run by a test.
type Server struct {
	Addr string // host:port
	Port int
	Dir  string
	args []string
	cmd  *exec.Cmd
	t    testing.TB
	tls  TLSFiles // set for a TLS-only server
}

// Binary returns the path of redis-server, or fails (with CI=true) or
// skips the test when it is missing.
func Binary(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("redis-server")
	if err == nil {
		return path
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("redis-server not found and CI=true: install it (apt-get install redis-server)")
	}
	t.Skip("redis-server not installed; with CI=true this is a failure")
	return ""
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	given.Lock()
	defer given.Unlock()
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		// The kernel may offer a port again as soon as it is closed, so two
		// calls in a row (a gateway and its admin endpoint) could get the
		// same one: never hand a port out twice in one test binary.
		if !given.ports[port] {
			given.ports[port] = true
			return port
		}
	}
}

var given = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// Start runs a redis-server with nothing on disk on a free port; extra
// arguments are passed through (e.g. "--requirepass", "x"). It is stopped
// when the test ends.
func Start(t testing.TB, extra ...string) *Server {
	t.Helper()
	bin := Binary(t)
	s := &Server{Port: FreePort(t), Dir: t.TempDir(), t: t}
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port))
	s.args = append([]string{"--bind", "127.0.0.1", "--port", strconv.Itoa(s.Port),
		"--save", "", "--appendonly", "no", "--dir", s.Dir,
		"--logfile", filepath.Join(s.Dir, "redis.log")}, extra...)
	s.start(bin)
	t.Cleanup(s.Stop)
	t.Log("used: redis-server") // for make test's summary
	return s
}

func (s *Server) start(bin string) {
	s.t.Helper()
	s.cmd = exec.Command(bin, s.args...)
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("starting redis-server: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if s.ping() == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	log, _ := os.ReadFile(filepath.Join(s.Dir, "redis.log"))
	s.t.Fatalf("redis-server on %s did not answer PING: %s", s.Addr, log)
}

// ping speaks just enough RESP to know the server is up, without a client.
func (s *Server) ping() error {
	if s.tls.CA != "" {
		return s.tlsPing()
	}
	c, err := net.DialTimeout("tcp", s.Addr, 200*time.Millisecond)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	// +PONG, or -NOAUTH when a password is set: either way it is up.
	if !strings.HasPrefix(line, "+PONG") && !strings.HasPrefix(line, "-NOAUTH") {
		return fmt.Errorf("unexpected reply %q", line)
	}
	return nil
}

// Stop kills the server; the data is gone with it.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Restart starts the server again on the same port, empty.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.start(Binary(s.t))
}

// Pause stops the process (SIGSTOP) so that it accepts connections but
// never answers, until the returned function resumes it.
func (s *Server) Pause() (resume func()) {
	s.t.Helper()
	if err := s.cmd.Process.Signal(sigStop); err != nil {
		s.t.Fatalf("pausing redis-server: %v", err)
	}
	return func() { _ = s.cmd.Process.Signal(sigCont) }
}
