package session_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sessionauth/caddy-sessionauth/session"
	"github.com/sessionauth/caddy-sessionauth/session/storetest"
)

// waitQueued waits (a few seconds at most) until n writes wait for the
// next group commit.
func waitQueued(t *testing.T, f *session.File, n int) {
	t.Helper()
	for i := 0; session.QueuedWrites(f) < n; i++ {
		if i == 500 {
			t.Fatalf("%d writes queued, want %d", session.QueuedWrites(f), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// tryCreate signs user in, for goroutines (which must not call t.Fatal).
func tryCreate(f *session.File, user, ip string, now time.Time, lim session.Limit) (string, error) {
	id, _, hash, err := f.NewCredential(context.Background(), user)
	if err != nil {
		return "", err
	}
	s := &session.Session{ID: id, UserID: user, TokenHash: hash, IP: ip, LoginIP: ip, CreatedAt: now, LastActiveAt: now}
	_, err = f.Create(context.Background(), s, filePolicy, lim)
	return id, err
}

// Writes that come while a commit is on its way share the next one: a
// group. Each still gets its own answer: two sign-ins succeed once each,
// a sign-in over its limit and a sign-out of nothing get their refusals,
// and a write that fails half-way fails alone, with nothing of it kept,
// while the rest of its group commits.
func TestFileGroupMembersGetTheirOwnAnswers(t *testing.T) {
	ctx := context.Background()
	clock := storetest.NewClock()
	f := openFile(t, clock.Now, session.FileOptions{})
	signIn(t, f, "alice", "192.0.2.1", clock.Now(), filePolicy)

	held, release := session.HoldNextCommit()
	defer func() {
		if release != nil {
			release()
		}
	}()
	create := func(user string, lim session.Limit) (string, error) {
		return tryCreate(f, user, "192.0.2.2", clock.Now(), lim)
	}
	stalled := make(chan error, 1)
	go func() { _, err := create("walter", session.Limit{}); stalled <- err }()
	<-held
	commits := session.FileCommits(f)

	boom := errors.New("boom")
	var wg sync.WaitGroup
	var bob1, bob2 string
	var errBob1, errBob2, errFail, errLimit, errEnd error
	run := func(fn func()) {
		wg.Add(1)
		go func() { defer wg.Done(); fn() }()
	}
	run(func() { bob1, errBob1 = create("bob", session.Limit{}) })
	run(func() { errFail = session.WriteThenFail(f, "half-way", boom) })
	run(func() { bob2, errBob2 = create("bob", session.Limit{}) })
	run(func() { _, errLimit = create("alice", session.Limit{Max: 1, Mode: session.LimitReject}) })
	run(func() {
		_, errEnd = f.End(ctx, "no-such-session", clock.Now(), session.EndLogout, session.ActorSelf, filePolicy)
	})
	waitQueued(t, f, 5)
	release()
	release = nil
	wg.Wait()
	if err := <-stalled; err != nil {
		t.Fatalf("the stalled sign-in: %v", err)
	}

	if errBob1 != nil || errBob2 != nil || !errors.Is(errFail, boom) || !errors.Is(errLimit, session.ErrLimitReached) || !errors.Is(errEnd, session.ErrNotFound) {
		t.Fatalf("answers: bob %v, bob %v, half-way %v, over the limit %v, sign-out of nothing %v", errBob1, errBob2, errFail, errLimit, errEnd)
	}
	if n := session.FileCommits(f) - commits; n != 2 {
		t.Fatalf("%d commits for the stalled write and a group of five, want 2", n)
	}
	if _, err := f.Take(ctx, "half-way", clock.Now()); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("the write that failed half-way left its entry: %v", err)
	}
	listed, _ := f.List(ctx, "bob", clock.Now(), filePolicy)
	events, _ := f.Events(ctx, "bob", time.Time{}, 0)
	if len(listed) != 2 || len(events) != 2 {
		t.Fatalf("bob: %d sessions and %d events after two sign-ins", len(listed), len(events))
	}
	for _, id := range []string{bob1, bob2} {
		if _, err := f.Get(ctx, id); err != nil {
			t.Fatalf("bob's session %s: %v", id, err)
		}
	}
	if alice, _ := f.List(ctx, "alice", clock.Now(), filePolicy); len(alice) != 1 {
		t.Fatalf("alice over her limit: %d sessions", len(alice))
	}
}

// Every sign-in answered before a crash is in the file when it opens
// again, whatever group it was committed in.
func TestFileAnsweredSignInsSurviveACrash(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sessions.db")
	clock := storetest.NewClock()
	f, err := session.OpenFile(path, clock.Now, session.FileOptions{WriteTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	const n = 64
	ids := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ids[i], errs[i] = tryCreate(f, fmt.Sprint("user", i), "192.0.2.1", clock.Now(), session.Limit{})
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if err := session.CrashFile(f); err != nil {
		t.Fatal(err)
	}
	f, err = session.OpenFile(path, clock.Now, session.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i, id := range ids {
		if _, err := f.Get(ctx, id); err != nil {
			t.Fatalf("sign-in %d, answered before the crash: %v", i, err)
		}
		if evs, _ := f.Events(ctx, fmt.Sprint("user", i), time.Time{}, 0); len(evs) != 1 {
			t.Fatalf("sign-in %d: %d events", i, len(evs))
		}
	}
}
