package session_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sessionauth/caddy-sessionauth/session"
	"github.com/sessionauth/caddy-sessionauth/session/storetest"
)

var sweepSessions = flag.Int("sweepsessions", 10000, "sessions in BenchmarkFileSweepAtRest (docs/operations.md quotes 100000)")

// Buckets of different sizes once made the sweep's round last the least
// common multiple of their pass counts (each pass a write transaction):
// now a round takes at most the sum of their slices, and a round that
// finds nothing expired writes nothing.
func TestFileSweepComesToRest(t *testing.T) {
	defer session.SetSweepBatch(10)()
	ctx := context.Background()
	clock := storetest.NewClock()
	f := openFile(t, clock.Now, session.FileOptions{NoSync: true})
	p := filePolicy
	// 23 sessions of 11 users (sessions, users, ips: 3 slices each;
	// histories: 2), 23 logins and 40 more events (7 slices), 4 counters.
	for i := range 23 {
		signIn(t, f, fmt.Sprintf("user%d", i%11), fmt.Sprintf("10.0.0.%d", i), clock.Now(), p)
	}
	for i := range 40 {
		if err := f.Record(ctx, session.Event{Type: session.EventRateLimited, UserID: "user1", At: clock.Now()}, p); err != nil {
			t.Fatal(err)
		}
		_ = i
	}
	for i := range 4 {
		if _, _, err := f.Hit(ctx, fmt.Sprint("k", i), time.Minute, clock.Now()); err != nil {
			t.Fatal(err)
		}
	}
	_, _ = f.Get(ctx, "none") // a read commits the counters, written behind
	// A slice per 10 keys and one to find each bucket's end.
	const bound = 3 + 7 + 2 + 1 + 1 + 1 + 6
	round := func() (passes int) {
		for more := true; more; passes++ {
			if passes > bound {
				t.Fatalf("the sweep's round goes on past %d passes", bound)
			}
			var err error
			if more, err = f.SweepPass(); err != nil {
				t.Fatal(err)
			}
		}
		return passes
	}
	before := session.FileCommits(f)
	round()
	round()
	if n := session.FileCommits(f); n != before {
		t.Fatalf("two rounds with nothing expired wrote %d transactions", n-before)
	}
	// Once everything has expired, one round drops it all, and the
	// next writes nothing.
	clock.Advance(p.Lifetime + p.Retention + time.Hour)
	round()
	if ss, _ := f.List(ctx, "user1", clock.Now(), p); len(ss) != 0 {
		t.Fatalf("after the round: %d sessions", len(ss))
	}
	if ev, _ := f.Events(ctx, "user1", time.Time{}, 0); len(ev) != 0 {
		t.Fatalf("after the round: %d events", len(ev))
	}
	before = session.FileCommits(f)
	round()
	if n := session.FileCommits(f); n != before {
		t.Fatalf("a round after everything expired wrote %d transactions", n-before)
	}
}

// storeWithData makes a store file with sessions, closes it and returns
// its path, the sessions' ids and its page size.
func storeWithData(t *testing.T, n int) (string, []string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sessions.db")
	f, err := session.OpenFile(path, nil, session.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	now := time.Now()
	for i := range n {
		id, _ := signIn(t, f, fmt.Sprintf("user%d", i), "10.0.0.1", now, filePolicy)
		ids = append(ids, id)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path, ids
}

func wantDamaged(t *testing.T, err error, path, cause string) {
	t.Helper()
	if !errors.Is(err, session.ErrFileDamaged) {
		t.Fatalf("opening the damaged file: %v", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, path) || !strings.Contains(msg, "caddy sessions salvage "+path) || !strings.Contains(msg, cause) {
		t.Fatalf("the error does not name the file, the cause (%q) and the salvage command: %v", cause, err)
	}
}

// A damaged file stops the store at open with an error that names the
// file and the command that salvages it, instead of a crash (a cut
// file), a new store over it (an empty file), or a silent roll-back (a
// damaged meta page); salvage then copies what is readable.
func TestFileDamagedAtOpen(t *testing.T) {
	t.Run("empty", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "sessions.db")
		if err := os.WriteFile(path, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := session.OpenFile(path, nil, session.FileOptions{})
		wantDamaged(t, err, path, "empty")
		if fi, _ := os.Stat(path); fi.Size() != 0 {
			t.Fatal("a new store was written over the empty file")
		}
	})
	t.Run("cut to half", func(t *testing.T) {
		path, ids := storeWithData(t, 300)
		// Half of what the file's pages reach, not of its length: bbolt
		// grows the file ahead of its pages, and a compact store can fit
		// in the first half of it.
		if err := os.Truncate(path, usedBytes(t, path)/2); err != nil {
			t.Fatal(err)
		}
		_, err := session.OpenFile(path, nil, session.FileOptions{})
		wantDamaged(t, err, path, "cut short")
		salvaged := salvage(t, path)
		if salvaged.Copied["sessions"] == 0 || salvaged.Copied["sessions"] >= len(ids)+1 {
			t.Logf("salvaged: %+v", salvaged)
		}
	})
	t.Run("first meta page", func(t *testing.T) {
		path, ids := storeWithData(t, 20)
		flipByte(t, path, 16+60) // inside meta 0's checksummed part
		_, err := session.OpenFile(path, nil, session.FileOptions{})
		wantDamaged(t, err, path, "first meta page")
		salvage(t, path)
		_ = ids
	})
	t.Run("second meta page", func(t *testing.T) {
		path, _ := storeWithData(t, 20)
		flipByte(t, path, int64(os.Getpagesize())+16+60)
		_, err := session.OpenFile(path, nil, session.FileOptions{})
		wantDamaged(t, err, path, "second meta page")
	})
	t.Run("zeroed page", func(t *testing.T) {
		path, ids := storeWithData(t, 300)
		f, err := session.OpenFile(path, nil, session.FileOptions{})
		if err != nil {
			t.Fatal(err)
		}
		root, ps, err := session.SessionsRootPage(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		zeroPage(t, path, root, ps)
		_, err = session.OpenFile(path, nil, session.FileOptions{})
		wantDamaged(t, err, path, "page")
		rep := salvage(t, path)
		if rep.Copied["users"] != len(ids) {
			t.Fatalf("the readable users index lost keys: %+v", rep)
		}
	})
}

// salvage runs Salvage into a new file, checks that it opens as a
// store, and returns the report.
func salvage(t *testing.T, path string) session.SalvageReport {
	t.Helper()
	to := filepath.Join(t.TempDir(), "salvaged.db")
	rep, err := session.Salvage(path, to)
	if err != nil {
		t.Fatalf("salvage: %v (%+v)", err, rep)
	}
	g, err := session.OpenFile(to, nil, session.FileOptions{})
	if err != nil {
		t.Fatalf("the salvaged file: %v", err)
	}
	g.Close()
	if fi, _ := os.Stat(to); fi.Mode().Perm() != 0o600 {
		t.Fatalf("salvaged file mode %v", fi.Mode())
	}
	return rep
}

// usedBytes is how far the newest of the file's two meta pages says its
// pages reach (high-water page id times page size), read from bbolt's
// meta layout: page header 16 bytes, then magic, version, page size,
// flags, root bucket (16), freelist id, high-water id, txid.
func usedBytes(t *testing.T, path string) int64 {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pageSize := int64(binary.LittleEndian.Uint32(raw[16+8:]))
	var best, bestTx uint64
	for _, at := range []int64{0, pageSize} {
		meta := raw[at+16:]
		hw, tx := binary.LittleEndian.Uint64(meta[40:]), binary.LittleEndian.Uint64(meta[48:])
		if tx >= bestTx {
			best, bestTx = hw, tx
		}
	}
	return int64(best) * pageSize
}

func flipByte(t *testing.T, path string, at int64) {
	t.Helper()
	fd, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	b := []byte{0}
	if _, err := fd.ReadAt(b, at); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := fd.WriteAt(b, at); err != nil {
		t.Fatal(err)
	}
}

func zeroPage(t *testing.T, path string, page int64, size int) {
	t.Helper()
	fd, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	if _, err := fd.WriteAt(make([]byte, size), page*int64(size)); err != nil {
		t.Fatal(err)
	}
}

// A page found damaged while the store runs fails the operation that
// read it (the request gets 503), and the process lives: validation,
// reads, writes and the sweep.
func TestFileDamagedWhileRunning(t *testing.T) {
	path, ids := storeWithData(t, 300)
	f, err := session.OpenFile(path, nil, session.FileOptions{WriteTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	root, ps, err := session.SessionsRootPage(f)
	if err != nil {
		t.Fatal(err)
	}
	zeroPage(t, path, root, ps) // the memory map shows it at once
	ctx := context.Background()
	if _, err := f.Validate(ctx, ids[7], [32]byte{}, "10.0.0.1", time.Now(), filePolicy); !errors.Is(err, session.ErrFileDamaged) {
		t.Fatalf("validate on a damaged page: %v", err)
	}
	if _, err := f.Get(ctx, ids[8]); !errors.Is(err, session.ErrFileDamaged) {
		t.Fatalf("get on a damaged page: %v", err)
	}
	if _, err := f.End(ctx, ids[9], time.Now(), session.EndRevoked, session.ActorAdmin, filePolicy); !errors.Is(err, session.ErrFileDamaged) {
		t.Fatalf("end on a damaged page: %v", err)
	}
	if err := f.Sweep(); !errors.Is(err, session.ErrFileDamaged) {
		t.Fatalf("sweep on a damaged page: %v", err)
	}
}

// A frozen disk: a write that cannot commit returns ErrFileTimeout at
// its deadline, however many pile up behind it; goroutines stay
// bounded; once the disk answers, writes go on, and a write whose
// caller gave up is there whole or not at all.
func TestFileWriteDeadline(t *testing.T) {
	ctx := context.Background()
	f := openFile(t, nil, session.FileOptions{WriteTimeout: 50 * time.Millisecond})
	kept, keptHash := signIn(t, f, "alice", "10.0.0.1", time.Now(), filePolicy)
	base := runtime.NumGoroutine()
	release := session.HoldCommits()
	defer func() {
		if release != nil {
			release()
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, 600)
	var ids sync.Map
	for i := range 600 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, _, hash, _ := f.NewCredential(ctx, "bob")
			now := time.Now()
			s := &session.Session{ID: id, UserID: "bob", TokenHash: hash, IP: "10.0.0.2", LoginIP: "10.0.0.2", CreatedAt: now, LastActiveAt: now}
			ids.Store(id, hash)
			_, err := f.Create(ctx, s, filePolicy, session.Limit{})
			errs <- err
			_ = i
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, session.ErrFileTimeout) {
			t.Fatalf("a write on a frozen disk: %v", err)
		}
	}
	if _, err := f.End(ctx, kept, time.Now(), session.EndLogout, session.ActorSelf, filePolicy); !errors.Is(err, session.ErrFileTimeout) {
		t.Fatalf("a sign-out on a frozen disk: %v", err)
	}
	if n := runtime.NumGoroutine(); n > base+300 {
		t.Fatalf("%d goroutines wait for the disk (at most 256 writers)", n-base)
	}
	// Validation reads the file and goes on.
	if v, err := f.Validate(ctx, kept, keptHash, "10.0.0.1", time.Now(), filePolicy); err != nil || v.Status != session.Valid {
		t.Fatalf("validate on a frozen disk: %v %v", v.Status, err)
	}
	release()
	release = nil
	id, _ := signIn(t, f, "carol", "10.0.0.3", time.Now(), filePolicy)
	if _, err := f.Get(ctx, id); err != nil {
		t.Fatalf("after the disk came back: %v", err)
	}
	// Every sign-in that timed out is whole (listed with its login
	// event) or absent.
	listed, _ := f.List(ctx, "bob", time.Now(), filePolicy)
	events, _ := f.Events(ctx, "bob", time.Time{}, 0)
	if len(listed) != len(events) {
		t.Fatalf("%d sessions of bob listed, %d login events", len(listed), len(events))
	}
	for _, s := range listed {
		if _, ok := ids.Load(s.ID); !ok {
			t.Fatalf("unknown session %s", s.ID)
		}
	}
}

// Deleting or replacing the file under a running store is noticed at
// the next check: writes are refused from then on, the open data is
// written back to the path (a file found there is moved aside) and kept
// locked, and the next open has every answered write.
func TestFileMovedUnderTheStore(t *testing.T) {
	for _, how := range []string{"deleted", "replaced"} {
		t.Run(how, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			path := filepath.Join(dir, "sessions.db")
			core, logs := observer.New(zap.ErrorLevel)
			f, err := session.OpenFile(path, nil, session.FileOptions{CheckEvery: 5 * time.Millisecond, Logger: zap.New(core)})
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			kept, keptHash := signIn(t, f, "alice", "10.0.0.1", time.Now(), filePolicy)
			old, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			revoked, _ := signIn(t, f, "bob", "10.0.0.2", time.Now(), filePolicy)
			if _, err := f.End(ctx, revoked, time.Now(), session.EndRevoked, session.ActorAdmin, filePolicy); err != nil {
				t.Fatal(err)
			}
			switch how {
			case "deleted":
				err = os.Remove(path)
			case "replaced": // an older copy put in place
				tmp := filepath.Join(dir, "old.db")
				if err = os.WriteFile(tmp, old, 0o600); err == nil {
					err = os.Rename(tmp, path)
				}
			}
			if err != nil {
				t.Fatal(err)
			}
			// The watch runs every 5ms; wait for what it says.
			deadline := time.Now().Add(10 * time.Second)
			for logs.FilterMessageSnippet("written back there").Len() == 0 {
				if time.Now().After(deadline) {
					t.Fatalf("nothing said within 10s after the file was %s: %v", how, logs.All())
				}
				time.Sleep(5 * time.Millisecond)
			}
			_, err = f.Create(ctx, &session.Session{ID: "x", UserID: "carol"}, filePolicy, session.Limit{})
			if err == nil || !strings.Contains(err.Error(), "writes are refused") {
				t.Fatalf("a write after the file was %s: %v", how, err)
			}
			if v, err := f.Validate(ctx, kept, keptHash, "10.0.0.1", time.Now(), filePolicy); err != nil || v.Status != session.Valid {
				t.Fatalf("validate after: %v %v", v.Status, err)
			}
			if _, err := session.OpenFile(path, nil, session.FileOptions{}); !errors.Is(err, session.ErrFileLocked) {
				t.Fatalf("a second store on the written-back file: %v", err)
			}
			if how == "replaced" {
				aside, _ := filepath.Glob(path + ".replaced-*")
				if len(aside) != 1 {
					t.Fatalf("the file found at the path was not kept aside: %v", aside)
				}
				if b, _ := os.ReadFile(aside[0]); !bytes.Equal(b, old) {
					t.Fatal("the file kept aside is not the one put there")
				}
			}
			f.Close()
			g, err := session.OpenFile(path, nil, session.FileOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			if s, err := g.Get(ctx, kept); err != nil || !s.Active() {
				t.Fatalf("the session after restart: %v", err)
			}
			if s, err := g.Get(ctx, revoked); err != nil || s.Active() {
				t.Fatalf("the revocation after restart: %v %v", s, err)
			}
		})
	}
}

// A backup taken while sign-ins go on is a store file that passes the
// consistency check and holds every session committed before it began.
func TestFileBackupUnderWrites(t *testing.T) {
	ctx := context.Background()
	f := openFile(t, nil, session.FileOptions{})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var committed []string
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
				id, _ := signIn(t, f, fmt.Sprintf("w%d-%d", w, i%20), "10.0.0.1", time.Now(), filePolicy)
				mu.Lock()
				committed = append(committed, id)
				mu.Unlock()
			}
		}()
	}
	for {
		mu.Lock()
		n := len(committed)
		mu.Unlock()
		if n >= 200 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	mu.Lock()
	before := append([]string(nil), committed...)
	mu.Unlock()
	copyPath := filepath.Join(t.TempDir(), "backup.db")
	out, err := os.OpenFile(copyPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Backup(out); err != nil {
		t.Fatal(err)
	}
	out.Close()
	close(stop)
	wg.Wait()
	if err := session.CheckFile(copyPath); err != nil {
		t.Fatalf("the backup: %v", err)
	}
	g, err := session.OpenFile(copyPath, nil, session.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	for _, id := range before {
		if _, err := g.Get(ctx, id); err != nil {
			t.Fatalf("session %s committed before the backup: %v", id, err)
		}
	}
}

// A file readable by others is used, with a warning; Open of a new file
// makes it 0600 (TestFilePermissions); validate (NewFile) touches nothing.
func TestFileNewTouchesNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "sessions.db")
	f := session.NewFile(path, nil, session.FileOptions{})
	if _, err := os.Stat(filepath.Dir(path)); !os.IsNotExist(err) {
		t.Fatalf("NewFile made the directory: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("Close of a file never opened made it: %v", err)
	}
}

// An existing store file that other users can read is used with a
// warning that names it, as for a world-readable secret.
func TestFileReadableByOthersWarns(t *testing.T) {
	path, _ := storeWithData(t, 1)
	for mode, warns := range map[os.FileMode]bool{0o644: true, 0o600: false} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		core, logs := observer.New(zap.WarnLevel)
		f, err := session.OpenFile(path, nil, session.FileOptions{Logger: zap.New(core)})
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		got := logs.FilterMessageSnippet("read by other users").FilterField(zap.String("path", path)).Len() == 1
		if got != warns {
			t.Fatalf("mode %v: warned %v, want %v (%v)", mode, got, warns, logs.All())
		}
	}
}

// BenchmarkFileSweepAtRest measures one sweep round over a store of
// -sweepsessions sessions (one user each) when nothing has expired: the
// passes it takes, the time (the sweep runs once a minute, so the idle
// CPU is this time over 60 s), and that it writes nothing.
func BenchmarkFileSweepAtRest(b *testing.B) {
	clock := storetest.NewClock()
	f := openFile(b, clock.Now, session.FileOptions{NoSync: true})
	for i := range *sweepSessions {
		signIn(b, f, fmt.Sprint("u", i), fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255), clock.Now(), filePolicy)
	}
	commits := session.FileCommits(f)
	b.ResetTimer()
	passes := 0
	for range b.N {
		for more := true; more; passes++ {
			var err error
			if more, err = f.SweepPass(); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(passes)/float64(b.N), "passes/round")
	if n := session.FileCommits(f) - commits; n != 0 {
		b.Fatalf("rounds at rest wrote %d transactions", n)
	}
}
