package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// wrkLoad runs wrk against t: a C load generator costs this 2-core
// machine far less CPU than Go's HTTP client, so more of it is left to
// the Caddy being measured (the reference numbers use wrk too).
func wrkLoad(t *target, conns int, d time.Duration) result {
	args := []string{"-t2", "-c" + strconv.Itoa(conns), "-d" + strconv.Itoa(int(d.Seconds())) + "s", "--latency"}
	if t.cookie != "" {
		args = append(args, "-H", "Cookie: "+t.cookie)
	}
	out, err := exec.Command("wrk", append(args, t.addr+"/app")...).CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "  %s: wrk: %v\n%s", t.name, err, out)
		return result{}
	}
	return parseWrk(t.name, out)
}

// parseWrk reads requests/s, the 50% and 99% latencies and the request
// count from wrk's --latency report; non-2xx answers and socket errors
// are reported as failures, as the Go generator does.
func parseWrk(name string, out []byte) result {
	var r result
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 2 && f[0] == "Requests/sec:":
			r.rps, _ = strconv.ParseFloat(f[1], 64)
		case len(f) == 2 && f[0] == "50%":
			r.p50 = wrkDuration(f[1])
		case len(f) == 2 && f[0] == "99%":
			r.p99 = wrkDuration(f[1])
		case len(f) >= 2 && f[1] == "requests":
			r.n, _ = strconv.ParseInt(f[0], 10, 64)
		case strings.HasPrefix(sc.Text(), "  Non-2xx") || strings.HasPrefix(sc.Text(), "  Socket errors"):
			fmt.Fprintf(os.Stderr, "  %s: %s\n", name, strings.TrimSpace(sc.Text()))
		}
	}
	return r
}

// wrkDuration parses wrk's "1.23ms", "456.00us" or "1.01s".
func wrkDuration(s string) time.Duration {
	for _, u := range []struct {
		suffix string
		unit   time.Duration
	}{{"us", time.Microsecond}, {"ms", time.Millisecond}, {"s", time.Second}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return time.Duration(f * float64(u.unit))
		}
	}
	return 0
}
