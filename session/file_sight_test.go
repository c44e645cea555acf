package session_test

import (
	"context"
	"errors"
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
