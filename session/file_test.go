package session_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sessionauth/caddy-sessionauth/session"
	"github.com/sessionauth/caddy-sessionauth/session/storetest"
)

func openFile(t testing.TB, now func() time.Time, o session.FileOptions) *session.File {
	t.Helper()
	f, err := session.OpenFile(filepath.Join(t.TempDir(), "sessions.db"), now, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestFileConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, now func() time.Time) session.Store {
		return openFile(t, now, session.FileOptions{})
	}, storetest.Hooks{DropIndex: func(t *testing.T, st session.Store, user string) {
		if err := session.DropFileUserIndex(st.(*session.File), user); err != nil {
			t.Fatal(err)
		}
	}})
}

var filePolicy = session.Policy{Lifetime: 24 * time.Hour, IdleTimeout: time.Hour, TouchInterval: 5 * time.Minute, Retention: 48 * time.Hour}

func signIn(t testing.TB, st session.Store, uid, ip string, now time.Time, p session.Policy) (string, [32]byte) {
	t.Helper()
	id, _, hash, err := session.LegacyCredential(uid)
	if err != nil {
		t.Fatal(err)
	}
	s := &session.Session{ID: id, UserID: uid, TokenHash: hash, IP: ip, LoginIP: ip, CreatedAt: now, LastActiveAt: now}
	if _, err := st.Create(context.Background(), s, p, session.Limit{}); err != nil {
		t.Fatal(err)
	}
	return id, hash
}

// What was answered before Close is there after the file is opened
// again: sessions, the touch written behind, a revocation, the audit
// trail, counters, and a notice that was claimed but never acked.
func TestFileKeepsEverythingAcrossReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sessions.db")
	clock := storetest.NewClock()
	f, err := session.OpenFile(path, clock.Now, session.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kept, keptHash := signIn(t, f, "alice", "192.0.2.1", clock.Now(), filePolicy)
	revoked, revokedHash := signIn(t, f, "alice", "192.0.2.1", clock.Now(), filePolicy)
	clock.Advance(10 * time.Minute)
	v, err := f.Validate(ctx, kept, keptHash, "198.51.100.7", clock.Now(), filePolicy)
	if err != nil || v.Status != session.Valid || !v.Touched || v.PrevIP != "192.0.2.1" {
		t.Fatalf("touch: %+v %v", v, err)
	}
	if _, err := f.End(ctx, revoked, clock.Now(), session.EndRevoked, session.ActorAdmin, filePolicy); err != nil {
		t.Fatal(err)
	}
	if err := f.Enqueue(ctx, "https://hooks.example/a", session.Notice{Event: "new_login", UserID: "alice"}); err != nil {
		t.Fatal(err)
	}
	if got, err := f.Claim(ctx, "g", "https://hooks.example/a", 10, time.Second); err != nil || len(got) != 1 {
		t.Fatalf("claim: %v %v", got, err)
	}
	if n, _, err := f.Hit(ctx, "login:192.0.2.1", time.Hour, clock.Now()); err != nil || n != 1 {
		t.Fatalf("hit: %d %v", n, err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	f, err = session.OpenFile(path, clock.Now, session.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	v, err = f.Validate(ctx, kept, keptHash, "198.51.100.7", clock.Now(), filePolicy)
	if err != nil || v.Status != session.Valid || v.Touched || !v.Session.LastActiveAt.Equal(clock.Now()) || v.Session.IP != "198.51.100.7" {
		t.Fatalf("after reopen, the touched session: %+v %v", v, err)
	}
	if v, _ := f.Validate(ctx, revoked, revokedHash, "192.0.2.1", clock.Now(), filePolicy); v.Status != session.Ended {
		t.Fatalf("after reopen, the revoked session is %v", v.Status)
	}
	evs, err := f.Events(ctx, "alice", time.Time{}, 0)
	if err != nil || len(evs) != 3 || evs[0].Type != session.EventRevoke {
		t.Fatalf("events after reopen: %+v %v", evs, err)
	}
	if n, _, _ := f.Hit(ctx, "login:192.0.2.1", time.Hour, clock.Now()); n != 2 {
		t.Fatalf("the counter started again at %d", n)
	}
	got, err := f.Claim(ctx, "g", "https://hooks.example/a", 10, time.Second)
	if err != nil || len(got) != 1 || got[0].Notice.UserID != "alice" {
		t.Fatalf("a notice claimed before the restart and never acked: %v %v", got, err)
	}
	if err := f.Ack(ctx, got[0]); err != nil {
		t.Fatal(err)
	}
	if again, _ := f.Claim(ctx, "g", "https://hooks.example/a", 10, 50*time.Millisecond); len(again) != 0 {
		t.Fatalf("acked notice came back: %v", again)
	}
	if ss, _, _ := f.ByIP(ctx, "198.51.100.7", clock.Now(), filePolicy, "", 10); len(ss) != 1 || ss[0].ID != kept {
		t.Fatalf("by IP after the touch moved it: %v", ss)
	}
	if ss, _, _ := f.ByIP(ctx, "192.0.2.1", clock.Now(), filePolicy, "", 10); len(ss) != 0 {
		t.Fatalf("the old IP still lists: %v", ss)
	}
}

// A second opener of the same file (another process, in production)
// fails with an error that names the file and says why.
func TestFileSecondOpenerFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sessions.db")
	openFile := func() (*session.File, error) { return session.OpenFile(path, nil, session.FileOptions{}) }
	f, err := openFile()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	g, err := openFile()
	if err == nil {
		g.Close()
		t.Fatal("the same file opened twice")
	}
	if !errors.Is(err, session.ErrFileLocked) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "another process holds it") {
		t.Fatalf("error: %v", err)
	}
}

// The file's directory is made 0700 and the file 0600: sessions are
// credentials' hashes and personal data.
func TestFilePermissions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "session_auth")
	path := filepath.Join(dir, "sessions.db")
	f, err := session.OpenFile(path, nil, session.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for p, want := range map[string]os.FileMode{dir: 0o700 | os.ModeDir, path: 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode(), want)
		}
	}
}

var churn = flag.Int("churn", 5000, "sign-ins and sign-outs in TestFileChurnStaysBounded (docs/configuration.md quotes 100000)")

// Sign-ins and sign-outs by the thousand: once ended sessions, their
// events and histories pass retention, the sweep drops them and bbolt
// reuses their pages, so the file stops growing after the first round.
func TestFileChurnStaysBounded(t *testing.T) {
	const rounds = 5
	p := filePolicy
	p.Retention = time.Hour
	clock := storetest.NewClock()
	// Sign-ins are committed with fsync in production; the size of the
	// file does not depend on it, the run time here would.
	f := openFile(t, clock.Now, session.FileOptions{NoSync: true})
	ctx := context.Background()
	perRound := max(*churn/rounds, 1)
	var sizes []int64
	var sweepTime time.Duration
	for round := 0; round < rounds; round++ {
		for i := 0; i < perRound; i++ {
			uid := fmt.Sprintf("user-%d", i%5000)
			id, _ := signIn(t, f, uid, fmt.Sprintf("10.0.%d.%d", i/250%250, i%250), clock.Now(), p)
			if _, err := f.End(ctx, id, clock.Now(), session.EndLogout, session.ActorSelf, p); err != nil {
				t.Fatal(err)
			}
			clock.Advance(time.Millisecond)
		}
		clock.Advance(p.Retention + time.Minute)
		start := time.Now()
		if err := f.Sweep(); err != nil {
			t.Fatal(err)
		}
		sweepTime += time.Since(start)
		if users, _ := f.Users(ctx); len(users) != 0 {
			t.Fatalf("round %d: %d users left after the sweep", round, len(users))
		}
		size, err := f.Size()
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, size)
	}
	t.Logf("%d sign-ins and sign-outs in %d rounds: file size after each round %v bytes; sweeps took %v in all",
		perRound*rounds, rounds, sizes, sweepTime)
	if last := sizes[len(sizes)-1]; last > 2*sizes[0] {
		t.Fatalf("the file keeps growing under churn: %v", sizes)
	}
}

// Validation of an active session with no touch due, the request path:
// the file store against the memory store.
func BenchmarkValidate(b *testing.B) {
	for _, st := range []struct {
		name string
		open func(b *testing.B) session.Store
	}{
		{"memory", func(b *testing.B) session.Store {
			return newMemory(b, nil)
		}},
		{"file", func(b *testing.B) session.Store { return openFile(b, nil, session.FileOptions{}) }},
	} {
		b.Run(st.name, func(b *testing.B) {
			s := st.open(b)
			now := time.Now()
			id, hash := signIn(b, s, "bench", "192.0.2.1", now, filePolicy)
			ctx := context.Background()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if v, err := s.Validate(ctx, id, hash, "192.0.2.1", now, filePolicy); err != nil || v.Status != session.Valid {
						b.Fatal(v.Status, err)
					}
				}
			})
		})
	}
}

func TestFileStashExpires(t *testing.T) {
	c := storetest.NewClock()
	st := openFile(t, c.Now, session.FileOptions{})
	storetest.StashExpires(t, st, c)
}

// Validate answers from what it decoded while no write has committed
// since: every write is seen by the next Validate, also one from another
// operation on the same session or user.
func TestFileValidateSeesWritesAtOnce(t *testing.T) {
	st := openFile(t, nil, session.FileOptions{})
	ctx := context.Background()
	now := time.Now()
	valid := func(id string, hash [32]byte) session.Status {
		t.Helper()
		v, err := st.Validate(ctx, id, hash, "192.0.2.1", now, filePolicy)
		if err != nil {
			t.Fatal(err)
		}
		return v.Status
	}
	a, ha := signIn(t, st, "warm", "192.0.2.1", now, filePolicy)
	b, hb := signIn(t, st, "warm", "192.0.2.1", now, filePolicy)
	c, hc := signIn(t, st, "other", "192.0.2.1", now, filePolicy)
	for range 3 { // warm: the second and third answer from memory
		if valid(a, ha) != session.Valid || valid(b, hb) != session.Valid || valid(c, hc) != session.Valid {
			t.Fatal("not valid")
		}
	}
	if _, err := st.End(ctx, a, now, session.EndRevoked, session.ActorAdmin, filePolicy); err != nil {
		t.Fatal(err)
	}
	if s := valid(a, ha); s != session.Ended {
		t.Fatalf("after End: %v", s)
	}
	if _, err := st.EndUser(ctx, "warm", "", now, session.EndRevoked, session.ActorAdmin, filePolicy); err != nil {
		t.Fatal(err)
	}
	if s := valid(b, hb); s != session.Ended {
		t.Fatalf("after EndUser: %v", s)
	}
	if err := session.DropFileUserIndex(st, "other"); err != nil {
		t.Fatal(err)
	}
	if s := valid(c, hc); s != session.Unlisted {
		t.Fatalf("after its index went: %v", s)
	}
}

// The file and memory stores tag ids under a key of their own, not the
// bare SHA-256 of the user id: an id does not tell whose it is to one
// who hashes guessed user ids. The file keeps its key, so a user's tag
// outlives a restart; another store tags the same user otherwise.
func TestIDTagsAreKeyed(t *testing.T) {
	ctx := context.Background()
	tag := func(st session.Store) string {
		t.Helper()
		id, _, _, err := st.NewCredential(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		return id[:12]
	}
	path := filepath.Join(t.TempDir(), "sessions.db")
	f, err := session.OpenFile(path, nil, session.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	first := tag(f)
	f.Close()
	if f, err = session.OpenFile(path, nil, session.FileOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	m1, m2 := newMemory(t, nil), newMemory(t, nil)
	other := openFile(t, nil, session.FileOptions{})
	legacy := session.LegacyUserTag("alice")
	switch {
	case first == legacy || tag(m1) == legacy:
		t.Fatalf("a store tags alice's ids with the unkeyed digest %s", legacy)
	case tag(f) != first:
		t.Fatalf("the file tags alice %s after a restart, %s before", tag(f), first)
	case tag(other) == first || tag(m1) == tag(m2):
		t.Fatal("two stores tag alice alike")
	}
}
