package integration

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessionauth/caddy-sessionauth/internal/redisserver"
)

// An app's Session-Logout that the store cannot carry out (a password
// change answering "others" while Redis fails) reaches the client as 503,
// never as the app's 200 while the other sessions live on.
func TestFailedSessionLogoutIsNotSilent(t *testing.T) {
	srv := redisserver.Start(t)
	p := redisserver.NewProxy(t, srv.Addr)
	up := newUpstream(t)
	// The app breaks the link to Redis while it handles the password
	// change, after the gateway validated the request.
	var dropOnce sync.Once
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	app := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/password" {
			dropOnce.Do(p.Drop)
		}
		up.ServeHTTP(w, r)
	})}
	go func() { _ = app.Serve(l) }()
	t.Cleanup(func() { _ = app.Close() })
	g := loadCaddy(t, site(fmt.Sprintf("store redis redis://%s {\n key_prefix %s:\n read_timeout 300ms\n\t\tdial_timeout 300ms\n\t}", p.Addr, randomID())),
		&testUpstream{addr: l.Addr().String()})

	here, there := newClient(t, g), newClient(t, g)
	here.signIn("pia")
	there.signIn("pia")
	res := here.do("POST", "/password?logout=others", "Accept", "text/html")
	p.Heal()
	if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" || strings.Contains(res.body, "upstream-body") {
		t.Fatalf("a Session-Logout the store refused: %d %q", res.StatusCode, res.body)
	}
	// The client knows it may not have happened, and a retry does it once
	// the link is back (connections the drop broke may fail one request
	// each first).
	waitUntil(t, 10*time.Second, func() bool { return there.do("GET", "/").StatusCode != 503 })
	waitUntil(t, 10*time.Second, func() bool { return here.do("POST", "/password?logout=others").StatusCode == 200 })
	if res := there.do("GET", "/"); res.StatusCode != 401 {
		t.Fatalf("the other session after the retry: %d", res.StatusCode)
	}
}

// At start, without waiting for a request, the log says that the store is
// out of reach, where it is and why.
func TestStartWarnsOfAnUnreachableStore(t *testing.T) {
	dead := fmt.Sprintf("127.0.0.1:%d", redisserver.FreePort(t)) // nothing listens there
	logFile := t.TempDir() + "/caddy.log"
	text := strings.Replace(site("store redis redis://"+dead+" {\n read_timeout 200ms\n dial_timeout 200ms\n }"),
		"\tauto_https off\n", "\tauto_https off\n\tlog {\n\t\toutput file "+logFile+"\n\t\tformat json\n\t}\n", 1)
	loadCaddy(t, text, newUpstream(t))
	var line string
	waitUntil(t, 10*time.Second, func() bool {
		b, _ := os.ReadFile(logFile)
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, "cannot reach the session store") {
				line = l
				return true
			}
		}
		return false
	})
	if !strings.Contains(line, dead) || !strings.Contains(line, `"cause":"connection refused"`) {
		t.Fatalf("the warning does not name the address and the cause: %s", line)
	}
}
