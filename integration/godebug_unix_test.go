//go:build unix

package integration

import (
	"os"
	"strings"
	"syscall"
)

// net/http reads GODEBUG once, when the process starts, and its HTTP/2
// server offers WebSockets (extended CONNECT, RFC 8441) only with
// http2xconnect=1, as an operator runs Caddy to serve them. The suite
// runs Caddy in process, so it starts itself again with the setting.
func init() {
	godebug := os.Getenv("GODEBUG")
	if strings.Contains(godebug, "http2xconnect=1") {
		return
	}
	exe, err := os.Executable()
	if err != nil {
		return
	}
	env := []string{"GODEBUG=" + strings.TrimPrefix(godebug+",http2xconnect=1", ",")}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GODEBUG=") {
			env = append(env, kv)
		}
	}
	_ = syscall.Exec(exe, os.Args, env) // returns only on failure: the HTTP/2 WebSocket tests then say why
}
