// Command testsummary reads `go test -json` events and says what ran.
//
// With -progress it reads them from stdin and prints what `go test`
// would (each package's result line, and the whole output of a test that
// failed), so that `make test` still shows its progress. Given files, it
// prints the closing summary of every run in them: packages, tests,
// failures, skips by reason, and which real servers were used (tests
// announce them with a log line "used: <what>"). Either way it exits 1
// when anything failed.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
)

type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

// resources are what a run may use for real; a test says it did with a
// log line "used: <name>".
var resources = []string{"redis-server", "Redis Cluster", "Redis Sentinel", "Chromium"}

type summary struct {
	packages, pkgFailed         map[string]bool
	passed, failed, skipped     int
	skipReasons                 map[string]int
	used                        map[string]int
	output                      map[string][]string // per test, until it ends
	failedTests, failedPackages []string
}

func newSummary() *summary {
	return &summary{packages: map[string]bool{}, pkgFailed: map[string]bool{}, skipReasons: map[string]int{},
		used: map[string]int{}, output: map[string][]string{}}
}

var logLine = regexp.MustCompile(`^\s+\S+\.go:\d+: (.*)$`)

// add takes one event; progress, when not nil, gets what go test prints.
func (s *summary) add(e event, progress io.Writer) {
	key := e.Package + " " + e.Test
	switch e.Action {
	case "output":
		if e.Test == "" {
			if progress != nil && !strings.HasPrefix(e.Output, "=== ") && !strings.HasPrefix(e.Output, "--- ") && e.Output != "PASS\n" {
				fmt.Fprint(progress, e.Output)
			}
			return
		}
		s.output[key] = append(s.output[key], e.Output)
	case "pass", "fail", "skip":
		if e.Test == "" {
			s.packages[e.Package] = true
			if e.Action == "fail" {
				s.pkgFailed[e.Package] = true
				s.failedPackages = append(s.failedPackages, e.Package)
			}
			return
		}
		out := s.output[key]
		delete(s.output, key)
		for _, line := range out {
			if m := logLine.FindStringSubmatch(strings.TrimRight(line, "\n")); m != nil {
				for _, r := range resources {
					if m[1] == "used: "+r && e.Action != "skip" {
						s.used[r]++
					}
				}
			}
		}
		switch e.Action {
		case "pass":
			s.passed++
		case "fail":
			s.failed++
			s.failedTests = append(s.failedTests, e.Package+" "+e.Test)
			if progress != nil {
				fmt.Fprint(progress, strings.Join(out, ""))
			}
		case "skip":
			s.skipped++
			reason := "no reason given"
			for _, line := range out {
				if m := logLine.FindStringSubmatch(strings.TrimRight(line, "\n")); m != nil {
					reason = m[1]
				}
			}
			s.skipReasons[reason]++
		}
	}
}

func (s *summary) print(w io.Writer) {
	fmt.Fprintf(w, "\n== make test: what ran\n")
	fmt.Fprintf(w, "packages: %d (%d failed)\n", len(s.packages), len(s.pkgFailed))
	fmt.Fprintf(w, "tests:    %d passed, %d failed, %d skipped (subtests included)\n", s.passed, s.failed, s.skipped)
	reasons := make([]string, 0, len(s.skipReasons))
	for r := range s.skipReasons {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	for _, r := range reasons {
		fmt.Fprintf(w, "  skipped %d× : %s\n", s.skipReasons[r], r)
	}
	fmt.Fprintln(w, "real servers and browsers:")
	for _, r := range resources {
		if n := s.used[r]; n > 0 {
			fmt.Fprintf(w, "  %-15s used by %d tests\n", r, n)
		} else {
			fmt.Fprintf(w, "  %-15s NOT used\n", r)
		}
	}
	for _, t := range s.failedTests {
		fmt.Fprintf(w, "FAILED: %s\n", t)
	}
	for _, p := range s.failedPackages {
		fmt.Fprintf(w, "FAILED package: %s\n", p)
	}
}

func read(r io.Reader, s *summary, progress io.Writer) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			// go test prints build errors as plain text.
			if progress != nil {
				fmt.Fprintln(progress, sc.Text())
			}
			s.failedPackages = append(s.failedPackages, "(build) "+sc.Text())
			continue
		}
		s.add(e, progress)
	}
	return sc.Err()
}

func main() {
	progress := flag.Bool("progress", false, "read events from stdin and print go test's usual output")
	flag.Parse()
	s := newSummary()
	if *progress {
		if err := read(os.Stdin, s, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "testsummary:", err)
			os.Exit(1)
		}
	} else {
		for _, name := range flag.Args() {
			f, err := os.Open(name)
			if err != nil {
				fmt.Fprintln(os.Stderr, "testsummary:", err)
				os.Exit(1)
			}
			err = read(f, s, nil)
			f.Close()
			if err != nil {
				fmt.Fprintln(os.Stderr, "testsummary:", err)
				os.Exit(1)
			}
		}
		s.print(os.Stdout)
	}
	if s.failed > 0 || len(s.failedPackages) > 0 {
		os.Exit(1)
	}
}
