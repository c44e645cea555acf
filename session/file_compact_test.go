package session_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessionauth/caddy-sessionauth/session"
	"github.com/sessionauth/caddy-sessionauth/session/storetest"
)

// grownThenExpired fills a store at path to at least 4 MiB, lets all
// but the last sessions pass their purge time and sweeps them: the file
// keeps its size. It returns the sessions still valid.
func grownThenExpired(t *testing.T, path string, clock *storetest.Clock) (map[string][32]byte, *session.File) {
	t.Helper()
	f, err := session.OpenFile(path, clock.Now, session.FileOptions{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := 0; ; i++ {
		if _, err := f.Create(ctx, realSession(t, f, i, clock.Now()), filePolicy, session.Limit{}); err != nil {
			t.Fatal(err)
		}
		clock.Advance(time.Millisecond)
		if i%500 == 499 {
			if fi, _ := os.Stat(path); fi.Size() >= 4<<20 {
				break
			}
		}
	}
	clock.Advance(filePolicy.Lifetime + filePolicy.Retention)
	kept := map[string][32]byte{}
	for i := range 20 {
		s := realSession(t, f, 1_000_000+i, clock.Now())
		if _, err := f.Create(ctx, s, filePolicy, session.Limit{}); err != nil {
			t.Fatal(err)
		}
		kept[s.ID] = s.TokenHash
	}
	if err := f.Sweep(); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Size() < 4<<20 {
		t.Fatalf("the file shrank on its own to %d bytes", fi.Size())
	}
	return kept, f
}

func assertValid(t *testing.T, f *session.File, kept map[string][32]byte, now time.Time) {
	t.Helper()
	for id, hash := range kept {
		v, err := f.Validate(context.Background(), id, hash, "10.0.0.1", now, filePolicy)
		if err != nil || v.Status != session.Valid {
			t.Fatalf("session %s after the compaction: %v %v", id, v.Status, err)
		}
	}
}

// A file grown to 4 MiB whose sessions then mostly expired gives its
// space back when the running store compacts it: under 256 KiB, the
// sessions left still valid, new sign-ins written to the compacted
// file, which the store keeps locked and opens again.
func TestFileCompactOnline(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sessions.db")
	clock := storetest.NewClock()
	kept, f := grownThenExpired(t, path, clock)
	defer f.Close()
	rep, err := f.Compact()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("compacted online: %d -> %d bytes", rep.Before, rep.After)
	if fi, _ := os.Stat(path); rep.Before < 4<<20 || rep.After >= 256<<10 || fi.Size() != rep.After {
		t.Fatalf("compacted from %d to %d bytes (the file has %d)", rep.Before, rep.After, fi.Size())
	}
	assertValid(t, f, kept, clock.Now())
	s := realSession(t, f, 2_000_000, clock.Now())
	if _, err := f.Create(context.Background(), s, filePolicy, session.Limit{}); err != nil {
		t.Fatal(err)
	}
	kept[s.ID] = s.TokenHash
	if _, err := session.OpenFile(path, clock.Now, session.FileOptions{}); !errors.Is(err, session.ErrFileLocked) {
		t.Fatalf("a second store on the compacted file: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	again := openAt(t, path, clock)
	assertValid(t, again, kept, clock.Now())
}

// `caddy sessions compact --file`: the same, offline; a file that a
// running store holds is refused, naming the online way.
func TestFileCompactOffline(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sessions.db")
	clock := storetest.NewClock()
	kept, f := grownThenExpired(t, path, clock)
	if _, err := session.CompactFile(path); err == nil || !strings.Contains(err.Error(), "caddy sessions compact` (without --file)") {
		t.Fatalf("compacting a file a store holds: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	rep, err := session.CompactFile(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("compacted offline: %d -> %d bytes", rep.Before, rep.After)
	if rep.Before < 4<<20 || rep.After >= 256<<10 {
		t.Fatalf("compacted from %d to %d bytes", rep.Before, rep.After)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the compacted file: %v %v", fi, err)
	}
	if err := session.CheckFile(path); err != nil {
		t.Fatal(err)
	}
	assertValid(t, openAt(t, path, clock), kept, clock.Now())
}

func openAt(t *testing.T, path string, clock *storetest.Clock) *session.File {
	t.Helper()
	f, err := session.OpenFile(path, clock.Now, session.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// Sign-ins while the running store compacts: each one answered is in
// the compacted file (they wait for the copy, none is written to the
// file it replaces).
func TestFileCompactLosesNoWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sessions.db")
	clock := storetest.NewClock()
	f, err := session.OpenFile(path, clock.Now, session.FileOptions{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	kept := map[string][32]byte{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				s := realSession(t, f, w*1_000_000+i, clock.Now())
				if _, err := f.Create(context.Background(), s, filePolicy, session.Limit{}); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				kept[s.ID] = s.TokenHash
				mu.Unlock()
			}
		}()
	}
	for range 3 {
		waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(kept) >= 200 })
		if _, err := f.Compact(); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	assertValid(t, openAt(t, path, clock), kept, clock.Now())
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("gave up waiting")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
