package integration

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// BenchmarkThroughCaddy sends requests through an in-process Caddy, one at
// a time, to set the cost of session_auth beside plain reverse_proxy and
// reverse_proxy adding the same identity headers. Client, Caddy and
// upstream share the process, so allocs/op and B/op compare the rows
// exactly (the same client and upstream work in each); ns/op is as noisy as
// the machine. make bench's load comparison measures throughput.
func BenchmarkThroughCaddy(b *testing.B) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	up := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/login" {
			w.Header().Set("Session-Login", "bench-user")
		}
		_, _ = io.WriteString(w, "ok")
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = up.Serve(l) }()
	defer up.Close()

	headers := ""
	for _, h := range []string{"User bench-user", "Session 5f1c2a9b8e7d6c5b4a3928171605f4e3",
		"Session-Created 2026-11-24T01:02:03Z", "IP 127.0.0.1", "Login-IP 127.0.0.1", "IP-Changed false",
		`Device "Unknown Device"`, "Device-Type unknown", `Browser "Unknown Browser"`, "OS Unknown",
		"Method handoff", "Authenticated-At 2026-11-24T01:02:03Z"} {
		headers += "\t\theader_up X-Auth-" + h + "\n"
	}
	proxy := func(extra string) string {
		return "\treverse_proxy " + l.Addr().String() + " {\n" + extra + "\t}\n"
	}
	rows := []struct{ name, body string }{
		{"reverse_proxy", proxy("")},
		{"reverse_proxy+headers", proxy(headers)},
		{"session_auth_memory", "\tsession_auth {\n\t\tstore memory\n\t\tmax_sessions 0\n\t}\n" + proxy("")},
	}
	admin := freeBenchPort(b)
	cf := fmt.Sprintf("{\n\tadmin 127.0.0.1:%d\n\tpersist_config off\n\tauto_https off\n\tlog default {\n\t\tlevel ERROR\n\t}\n}\n", admin)
	addrs := make([]string, len(rows))
	for i, row := range rows {
		addrs[i] = fmt.Sprintf("http://127.0.0.1:%d", freeBenchPort(b))
		cf += addrs[i] + " {\n" + row.body + "}\n"
	}
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cf), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		b.Fatal(err)
	}
	if err := caddy.Load(cfg, true); err != nil {
		b.Fatal(err)
	}
	defer stopCaddy()

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	for i, row := range rows {
		b.Run(row.name, func(b *testing.B) {
			var cookie string
			if strings.HasPrefix(row.name, "session_auth") {
				res, err := client.Get(addrs[i] + "/login")
				if err != nil {
					b.Fatal(err)
				}
				_ = res.Body.Close()
				for _, c := range res.Cookies() {
					if c.Name == "session" {
						cookie = c.Name + "=" + c.Value
					}
				}
				if cookie == "" {
					b.Fatal("no session cookie from the hand-off")
				}
			}
			req, _ := http.NewRequest("GET", addrs[i]+"/", nil)
			if cookie != "" {
				req.Header.Set("Cookie", cookie)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				res, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, res.Body)
				_ = res.Body.Close()
				if res.StatusCode != 200 {
					b.Fatalf("status %d", res.StatusCode)
				}
			}
		})
	}
}

func freeBenchPort(b *testing.B) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
