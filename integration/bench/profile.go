package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// profileCaddy fetches a CPU profile of the running Caddy from its admin
// endpoint while a round is under way, for `go tool pprof`.
func profileCaddy(admin, dir, name string, d time.Duration) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		secs := max(1, int(d.Seconds())-1)
		res, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", admin, secs))
		if err != nil {
			fmt.Fprintln(os.Stderr, "  profile:", err)
			return
		}
		defer res.Body.Close()
		file := filepath.Join(dir, strings.NewReplacer(" ", "_", "+", "").Replace(name)+".pprof")
		f, err := os.Create(file)
		if err != nil {
			fmt.Fprintln(os.Stderr, "  profile:", err)
			return
		}
		defer f.Close()
		_, _ = io.Copy(f, res.Body)
	}()
	return done
}
