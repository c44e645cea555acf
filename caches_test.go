package sessionauth

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/sessionauth/caddy-sessionauth/session"
)

func TestGraceCacheAcceptsWhatItSawWithinThePeriod(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	p := session.Policy{Lifetime: 24 * time.Hour, IdleTimeout: time.Hour}
	g := newGraceCache(time.Minute, 10)
	s := &session.Session{ID: "a", CreatedAt: now, LastActiveAt: now}
	hash, other := [32]byte{1}, [32]byte{2}
	g.seen(s, hash, now)

	if g.accept("a", hash, now.Add(time.Minute), p) != s {
		t.Fatal("a session seen a period ago was refused")
	}
	if g.accept("a", other, now, p) != nil {
		t.Fatal("accepted with another secret")
	}
	if g.accept("a", hash, now.Add(time.Minute+time.Nanosecond), p) != nil {
		t.Fatal("accepted after the period")
	}
	if g.accept("b", hash, now, p) != nil {
		t.Fatal("accepted a session never seen here")
	}
	g.forget("a")
	if g.accept("a", hash, now, p) != nil {
		t.Fatal("accepted a session this process ended")
	}
}

// A full cache forgets the session seen least recently, so that a new
// sign-in still gets grace (it used to be left out until entries expired).
func TestGraceCacheFullForgetsTheOldest(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	p := session.Policy{Lifetime: 24 * time.Hour}
	g := newGraceCache(time.Hour, 2)
	for _, id := range []string{"a", "b", "c"} {
		g.seen(&session.Session{ID: id, CreatedAt: now, LastActiveAt: now}, [32]byte{}, now)
	}
	if g.accept("a", [32]byte{}, now, p) != nil {
		t.Error("the oldest entry outlived a full cache")
	}
	for _, id := range []string{"b", "c"} {
		if g.accept(id, [32]byte{}, now, p) == nil {
			t.Errorf("%s: refused", id)
		}
	}
}

func TestBlocklistBlocksUntilItsEnd(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	b := newBlocklist(10)
	b.block("guess:192.0.2.1", now.Add(30*time.Second))
	if left, blocked := b.check("guess:192.0.2.1", now.Add(10*time.Second)); !blocked || left != 20*time.Second {
		t.Fatalf("check = %v, %v; want blocked for 20s", left, blocked)
	}
	if _, blocked := b.check("guess:192.0.2.2", now); blocked {
		t.Fatal("another client blocked")
	}
	if _, blocked := b.check("guess:192.0.2.1", now.Add(30*time.Second)); blocked {
		t.Fatal("still blocked at its end")
	}
}

// A full blocklist forgets the client blocked least recently: a new
// flood is still shortcut (it used to be left to the store).
func TestBlocklistFullForgetsTheOldest(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	b := newBlocklist(2)
	for _, k := range []string{"a", "b", "c"} {
		b.block(k, now.Add(time.Minute))
	}
	if _, blocked := b.check("a", now); blocked {
		t.Error("the oldest block outlived a full list")
	}
	for _, k := range []string{"b", "c"} {
		if _, blocked := b.check(k, now); !blocked {
			t.Errorf("%s: not blocked", k)
		}
	}
}

// On the revocation channel, an ended session's id drops it from the
// caches and closes its connections; an id marked as changed (a step-up
// at another gateway) drops it from the caches and leaves its connections
// open.
func TestRevocationHubChangedKeepsConnections(t *testing.T) {
	hub := &revocationHub{caches: map[*sessionCache]struct{}{}}
	hub.ok.Store(true)
	cache := newSessionCache(time.Minute, hub)
	hub.caches[cache] = struct{}{}
	now := time.Now()
	const id = "0a0b0c0d0e0f00112233445566778899"
	s := &session.Session{ID: id, UserID: "zoe", CreatedAt: now, LastActiveAt: now}
	conn, peer := net.Pipe()
	defer peer.Close()
	ctx, cancel := context.WithCancel(context.Background())
	sk := &socket{id: id, cancel: cancel}
	sockets.add(sk, now.Add(time.Hour), now)
	tracked, _ := sk.hijacked(conn)
	defer tracked.Close()
	open := func() bool {
		sockets.mu.Lock()
		defer sockets.mu.Unlock()
		return len(sockets.bySession[id]) == 1
	}

	cache.put(s, [32]byte{1}, now)
	hub.heard(session.ChangedMark + id)
	if cache.lru.Contains(id) || !open() {
		t.Fatalf("changed: cached %v, connection open %v", cache.lru.Contains(id), open())
	}
	cache.put(s, [32]byte{1}, now)
	hub.heard("ffff," + id)
	if cache.lru.Contains(id) || open() || ctx.Err() == nil {
		t.Fatalf("ended: cached %v, connection open %v, request going on %v", cache.lru.Contains(id), open(), ctx.Err() == nil)
	}
}
