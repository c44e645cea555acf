package session_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sessionauth/caddy-sessionauth/session"
	"github.com/sessionauth/caddy-sessionauth/session/storetest"
)

// A file grown to 4 MiB whose sessions then expired is compacted by the
// sweep itself, no command given: the log says so with the sizes, the
// file shrinks under 256 KiB, the sessions left stay valid, and the
// sign-ins answered while it compacted are all in the compacted file.
func TestFileSweepCompactsSparseFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sessions.db")
	clock := storetest.NewClock()
	kept, f := grownThenExpired(t, path, clock)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.InfoLevel)
	f, err := session.OpenFile(path, clock.Now, session.FileOptions{NoSync: true, Sweep: 10 * time.Millisecond, Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	compacted := func() []observer.LoggedEntry {
		return logs.FilterMessage("compacted the session store file during the sweep").All()
	}
	var mu sync.Mutex
	signedIn := map[string][32]byte{}
	after := 0 // sign-ins answered once the compaction was logged
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				s := realSession(t, f, 3_000_000+w*1_000_000+i, clock.Now())
				if _, err := f.Create(context.Background(), s, filePolicy, session.Limit{}); err != nil {
					t.Error(err)
					return
				}
				done := len(compacted()) > 0
				mu.Lock()
				signedIn[s.ID] = s.TokenHash
				if done {
					after++
				}
				mu.Unlock()
			}
		}()
	}
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return after >= 20 })
	close(stop)
	wg.Wait()
	entries := compacted()
	if len(entries) != 1 {
		t.Fatalf("%d compactions logged, want 1 (at most one per hour)", len(entries))
	}
	fields := entries[0].ContextMap()
	before, shrunk := fields["bytes_before"].(int64), fields["bytes_after"].(int64)
	t.Logf("compacted during the sweep: %d -> %d bytes, writes waited %v, %d sign-ins meanwhile", before, shrunk, fields["writes_waited"], len(signedIn))
	if before < 4<<20 || shrunk > 512<<10 {
		t.Fatalf("compacted from %d to %d bytes", before, shrunk)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() > 512<<10 {
		t.Fatalf("the file after the compaction: %v %v", fi, err)
	}
	assertValid(t, f, kept, clock.Now())
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	again := openAt(t, path, clock)
	assertValid(t, again, kept, clock.Now())
	assertValid(t, again, signedIn, clock.Now())
}

// sparseFile signs n sessions in and lets them pass their purge time,
// swept: the file is then mostly free pages.
func sparseFile(t *testing.T, f *session.File, clock *storetest.Clock, from, n int) {
	t.Helper()
	for i := range n {
		if _, err := f.Create(context.Background(), realSession(t, f, from+i, clock.Now()), filePolicy, session.Limit{}); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(filePolicy.Lifetime + filePolicy.Retention)
	if err := f.Sweep(); err != nil {
		t.Fatal(err)
	}
}

// The sweep compacts at most once per interval of the store's clock,
// never a file whose pages are mostly in use or smaller than the
// threshold, never while a backup is being written, and not a file
// with more in use than it copies quickly: that one is named in the log.
func TestFileSweepCompactsOncePerInterval(t *testing.T) {
	defer session.SetAutoCompact(64<<10, 0.5, 7*24*time.Hour)()
	clock := storetest.NewClock()
	core, logs := observer.New(zap.InfoLevel)
	f := openFile(t, clock.Now, session.FileOptions{NoSync: true, Logger: zap.New(core)})
	for i := range 400 {
		if _, err := f.Create(context.Background(), realSession(t, f, i, clock.Now()), filePolicy, session.Limit{}); err != nil {
			t.Fatal(err)
		}
	}
	if session.CompactIfSparse(f) {
		t.Fatal("compacted a file whose sessions are all valid")
	}
	sparseFile(t, f, clock, 1000, 400)
	done := session.BackingUp(f)
	if session.CompactIfSparse(f) {
		t.Fatal("compacted while a backup was written")
	}
	done()
	if !session.CompactIfSparse(f) {
		t.Fatal("a sparse file was not compacted")
	}
	sparseFile(t, f, clock, 2000, 400) // 72 hours later: within the week
	if session.CompactIfSparse(f) {
		t.Fatal("compacted twice within the interval")
	}
	clock.Advance(7 * 24 * time.Hour)
	if !session.CompactIfSparse(f) {
		t.Fatal("not compacted once the interval passed")
	}
	sparseFile(t, f, clock, 3000, 400)
	clock.Advance(7 * 24 * time.Hour)
	restore := session.SetAutoCompactMaxLive(4096) // more in use than that
	if session.CompactIfSparse(f) {
		t.Fatal("compacted a file with more in use than the bound")
	}
	if got := logs.FilterMessageSnippet("run `caddy sessions compact` at a quiet hour").Len(); got != 1 {
		t.Fatalf("%d hints to compact by hand logged, want 1", got)
	}
	restore()
	sparseFile(t, f, clock, 4000, 400)
	clock.Advance(7 * 24 * time.Hour)
	fi, err := os.Stat(f.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer session.SetAutoCompact(fi.Size()+1, 0.5, 7*24*time.Hour)()
	if session.CompactIfSparse(f) {
		t.Fatal("compacted a file under the size threshold")
	}
}
