package session_test

import (
	"context"
	"testing"
	"time"

	"github.com/sessionauth/caddy-sessionauth/session"
	"github.com/sessionauth/caddy-sessionauth/session/storetest"
)

// A file in use holds at most 1 KiB per session: 5,000 sessions signed
// in (each a different user's, every field a browser's sign-in fills),
// touched every 12 hours for three days, 1,000 of them left to expire
// and swept, 1,000 more signed in. Touches rewrite the pages they land
// on, so the file also holds free pages, which bbolt reuses; the
// sweep compacts the file once they are more than half of it (as the
// sweep loop does after each round). Logged: the pages free at each
// step, for docs/performance.md.
func TestFileLiveBytesPerSession(t *testing.T) {
	const n = 5000
	clock := storetest.NewClock()
	f := openFile(t, clock.Now, session.FileOptions{NoSync: true})
	p := session.Policy{Lifetime: 7 * 24 * time.Hour, IdleTimeout: 24 * time.Hour, TouchInterval: 5 * time.Minute, Retention: 48 * time.Hour}
	ctx := context.Background()
	pages := func(what string) {
		all, free, pending := session.FilePages(f)
		t.Logf("%s: %d pages, %d free, %d freed by the last commits", what, all, free, pending)
	}
	signIn := func(from, to int) []*session.Session {
		var ss []*session.Session
		for i := from; i < to; i++ {
			s := realSession(t, f, i, clock.Now())
			if _, err := f.Create(ctx, s, p, session.Limit{Max: 5}); err != nil {
				t.Fatal(err)
			}
			ss = append(ss, s)
			clock.Advance(time.Millisecond)
		}
		return ss
	}
	touch := func(ss []*session.Session) {
		for _, s := range ss {
			if v, err := f.Validate(ctx, s.ID, s.TokenHash, s.IP, clock.Now(), p); err != nil || v.Status != session.Valid {
				t.Fatal(v.Status, err)
			}
		}
		if _, err := f.Get(ctx, ss[0].ID); err != nil { // commits the touches
			t.Fatal(err)
		}
	}
	sweep := func() {
		if err := f.Sweep(); err != nil {
			t.Fatal(err)
		}
		if session.CompactIfSparse(f) {
			pages("compacted by the sweep")
		}
	}
	gone := signIn(0, n/5)
	clock.Advance(time.Minute)
	kept := signIn(n/5, n)
	pages("signed in")
	for range 6 {
		clock.Advance(12 * time.Hour)
		touch(kept)
		pages("touched")
		sweep()
	}
	if _, err := f.Get(ctx, gone[0].ID); err != session.ErrNotFound {
		t.Fatalf("an expired session was not swept: %v", err)
	}
	kept = append(kept, signIn(n, n+n/5)...)
	clock.Advance(time.Minute)
	touch(kept)
	pages("signed in again and touched")
	held := session.FileBucketBytes(f)["sessions keys"]
	size, err := f.Size()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d sessions held in %d bytes: %d per session", held, size, size/int64(held))
	if held != n || size/int64(held) > 1024 {
		t.Fatalf("%d bytes per session (%d sessions), more than 1 KiB", size/int64(held), held)
	}
}
