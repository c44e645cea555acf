package main

import (
	"strings"
	"testing"
)

func TestSummarySaysWhatRan(t *testing.T) {
	events := strings.Join([]string{
		`{"Action":"run","Package":"p","Test":"TestRedis"}`,
		`{"Action":"output","Package":"p","Test":"TestRedis","Output":"    redis_test.go:12: used: redis-server\n"}`,
		`{"Action":"pass","Package":"p","Test":"TestRedis"}`,
		`{"Action":"output","Package":"p","Test":"TestBrowser","Output":"    browser_test.go:35: chromium not installed; with CI=true this is a failure\n"}`,
		`{"Action":"skip","Package":"p","Test":"TestBrowser"}`,
		`{"Action":"output","Package":"p","Test":"TestOther","Output":"    other_test.go:9: chromium not installed; with CI=true this is a failure\n"}`,
		`{"Action":"skip","Package":"p","Test":"TestOther"}`,
		`{"Action":"output","Package":"p","Test":"TestBad","Output":"    bad_test.go:3: boom\n"}`,
		`{"Action":"fail","Package":"p","Test":"TestBad"}`,
		`{"Action":"fail","Package":"p"}`,
		`{"Action":"pass","Package":"q"}`,
	}, "\n")
	s := newSummary()
	var progress strings.Builder
	if err := read(strings.NewReader(events), s, &progress); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(progress.String(), "boom") {
		t.Errorf("progress lacks the failed test's output: %q", progress.String())
	}
	var out strings.Builder
	s.print(&out)
	for _, want := range []string{
		"packages: 2 (1 failed)",
		"tests:    1 passed, 1 failed, 2 skipped",
		"skipped 2× : chromium not installed; with CI=true this is a failure",
		"redis-server    used by 1 tests",
		"Chromium        NOT used",
		"FAILED: p TestBad",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}
}
