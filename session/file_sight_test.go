package session_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/sessionauth/caddy-sessionauth/session"
	"github.com/sessionauth/caddy-sessionauth/session/storetest"
)

// The first request of a session from a new IP is answered without
// waiting for the disk: its sighting is written behind, in the next
// group commit, and validation sees it meanwhile. A sign-out (what
// ip_change deny does) still waits until it is on disk.
func TestFileSightIsWrittenBehind(t *testing.T) {
	ctx := context.Background()
	clock := storetest.NewClock()
	f := openFile(t, clock.Now, session.FileOptions{WriteTimeout: 200 * time.Millisecond})
	id, hash := signIn(t, f, "alice", "192.0.2.1", clock.Now(), filePolicy)
	other, _ := signIn(t, f, "bob", "192.0.2.2", clock.Now(), filePolicy)
	clock.Advance(time.Minute)
	if v, err := f.Validate(ctx, id, hash, "198.51.100.7", clock.Now(), filePolicy); err != nil || v.PrevIP != "192.0.2.1" {
		t.Fatalf("from a new IP: %+v %v", v, err)
	}
	if _, err := f.Get(ctx, id); err != nil { // the touch committed: the next commit is walter's
		t.Fatal(err)
	}

	held, release := session.HoldNextCommit()
	defer func() {
		if release != nil {
			release()
		}
	}()
	stalled := make(chan error, 1)
	go func() { _, err := tryCreate(f, "walter", "192.0.2.9", clock.Now(), session.Limit{}); stalled <- err }()
	<-held // the disk is stuck in a commit
	commits := session.FileCommits(f)

	s, err := f.Sight(ctx, id, session.Sighting{IP: "198.51.100.7", Country: "FR", City: "Paris"}, clock.Now(), filePolicy)
	if err != nil || s.Country != "FR" || s.IP != "198.51.100.7" {
		t.Fatalf("sighting while the disk is stuck: %+v %v", s, err)
	}
	if v, err := f.Validate(ctx, id, hash, "198.51.100.7", clock.Now(), filePolicy); err != nil || v.Status != session.Valid ||
		v.PrevIP != "" || v.Session.Country != "FR" || v.Session.City != "Paris" {
		t.Fatalf("validation before the sighting is committed: %+v %v", v, err)
	}
	if n := session.QueuedWrites(f); n != 1 || session.FileCommits(f) != commits {
		t.Fatalf("%d writes queued, %d commits: the sighting must wait for the next commit", n, session.FileCommits(f)-commits)
	}
	if _, err := f.End(ctx, other, clock.Now(), session.EndIPChange, session.ActorPolicy, filePolicy); !errors.Is(err, session.ErrFileTimeout) {
		t.Fatalf("a sign-out answered before it is on disk: %v", err)
	}

	release()
	release = nil
	if err := <-stalled; err != nil && !errors.Is(err, session.ErrFileTimeout) { // it gave up waiting: it commits later, whole
		t.Fatal(err)
	}
	got, err := f.Get(ctx, id)
	if err != nil || got.Country != "FR" || got.IP != "198.51.100.7" {
		t.Fatalf("after the commit: %+v %v", got, err)
	}
	evs, _ := f.Events(ctx, "alice", time.Time{}, 0)
	if len(evs) != 2 || evs[0].Type != session.EventIPChange || evs[0].IP != "198.51.100.7" {
		t.Fatalf("events: %+v", evs)
	}
	if byIP, _, _ := f.ByIP(ctx, "198.51.100.7", clock.Now(), filePolicy, "", 10); len(byIP) != 1 || byIP[0].ID != id {
		t.Fatalf("by the new IP: %v", byIP)
	}
}

// Counters answer without waiting for the disk (a sign-in counts its IP
// and its user before it is created), in order, and reach the file in
// the next commit.
func TestFileCountersAreWrittenBehind(t *testing.T) {
	ctx := context.Background()
	clock := storetest.NewClock()
	path := filepath.Join(t.TempDir(), "sessions.db")
	f, err := session.OpenFile(path, clock.Now, session.FileOptions{WriteTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	held, release := session.HoldNextCommit()
	stalled := make(chan error, 1)
	go func() { _, err := tryCreate(f, "walter", "192.0.2.9", clock.Now(), session.Limit{}); stalled <- err }()
	<-held
	for want := int64(1); want <= 3; want++ {
		if n, left, err := f.Hit(ctx, "login:ip:192.0.2.1", time.Minute, clock.Now()); err != nil || n != want || left != time.Minute {
			release()
			t.Fatalf("hit %d while the disk is stuck: %d %s %v", want, n, left, err)
		}
	}
	if err := f.Refund(ctx, "login:ip:192.0.2.1", clock.Now()); err != nil {
		release()
		t.Fatal(err)
	}
	release()
	<-stalled
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if f, err = session.OpenFile(path, clock.Now, session.FileOptions{}); err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if n, _, err := f.Hit(ctx, "login:ip:192.0.2.1", time.Minute, clock.Now()); err != nil || n != 3 {
		t.Fatalf("after reopening: %d %v, want the third hit", n, err)
	}
}
