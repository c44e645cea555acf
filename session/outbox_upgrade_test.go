package session_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	bolt "go.etcd.io/bbolt"

	"github.com/sessionauth/caddy-sessionauth/session"
	"github.com/sessionauth/caddy-sessionauth/session/storetest"
)

// legacyEntry is a notice as versions before the channels queued it.
func legacyEntry(t *testing.T, target, sessionID string, attempt int, due time.Time) []byte {
	b, err := json.Marshal(map[string]any{
		"target": target, "attempt": attempt, "due": due,
		"notice": session.Notice{Event: "new_login", UserID: "alice", SessionID: sessionID},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A file whose outbox an older version wrote (keys a bare sequence
// number, every target in one queue): at open each notice moves to its
// target's channel, attempts kept, and is delivered from there.
func TestFileOutboxFromAnOlderVersion(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sessions.db")
	clock := storetest.NewClock()
	f, err := session.OpenFile(path, clock.Now, session.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("outbox"))
		for i, e := range [][]byte{
			legacyEntry(t, "https://hooks.example/a", "s1", 0, clock.Now()),
			legacyEntry(t, "email", "s2", 3, clock.Now()),
			legacyEntry(t, "https://hooks.example/a", "s3", 1, clock.Now()),
		} {
			if err := b.Put(binary.BigEndian.AppendUint64(nil, uint64(i+1)), e); err != nil {
				return err
			}
		}
		return nil
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	f, err = session.OpenFile(path, clock.Now, session.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if targets, err := f.Targets(ctx); err != nil || len(targets) != 2 {
		t.Fatalf("targets %v %v", targets, err)
	}
	hooks, err := f.Claim(ctx, "g", "https://hooks.example/a", 10, time.Second)
	if err != nil || len(hooks) != 2 || hooks[0].Notice.SessionID != "s1" || hooks[1].Notice.SessionID != "s3" || hooks[1].Attempt != 1 {
		t.Fatalf("the webhook's channel: %+v %v", hooks, err)
	}
	mails, err := f.Claim(ctx, "g", "email", 10, time.Second)
	if err != nil || len(mails) != 1 || mails[0].Notice.SessionID != "s2" || mails[0].Attempt != 3 {
		t.Fatalf("the mail channel: %+v %v", mails, err)
	}
	for _, d := range append(hooks, mails...) {
		if err := f.Ack(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	if targets, _ := f.Targets(ctx); len(targets) != 0 {
		t.Fatalf("targets after every notice was delivered: %v", targets)
	}
}

// The same with Redis: the notices an older version left in its one
// stream and retry set move to their channels, once, when a gateway
// lists the channels.
func TestRedisOutboxFromAnOlderVersion(t *testing.T) {
	ctx := context.Background()
	_, client := newRedisClient(t)
	clock := storetest.NewClock()
	st := session.NewRedis(client, "up:", clock.Now)
	if err := client.XAdd(ctx, &redis.XAddArgs{Stream: "up:{notify}:q", Values: []string{
		"e", string(legacyEntry(t, "https://hooks.example/a", "s1", 0, time.Time{}))}}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := client.ZAdd(ctx, "up:{notify}:r", redis.Z{Score: float64(clock.Now().Add(time.Hour).UnixMilli()),
		Member: string(legacyEntry(t, "email", "s2", 4, time.Time{}))}).Err(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ { // a second listing moves nothing twice
		if targets, err := st.Targets(ctx); err != nil || len(targets) != 2 {
			t.Fatalf("targets %v %v", targets, err)
		}
	}
	hooks, err := st.Claim(ctx, "g", "https://hooks.example/a", 10, time.Second)
	if err != nil || len(hooks) != 1 || hooks[0].Notice.SessionID != "s1" {
		t.Fatalf("the webhook's channel: %+v %v", hooks, err)
	}
	mails, err := st.Claim(ctx, "g", "email", 10, time.Second)
	if err != nil || len(mails) != 1 || mails[0].Notice.SessionID != "s2" || mails[0].Attempt != 4 {
		t.Fatalf("the mail channel: %+v %v", mails, err)
	}
	for _, d := range append(hooks, mails...) {
		if err := st.Ack(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	if targets, _ := st.Targets(ctx); len(targets) != 0 {
		t.Fatalf("targets after every notice was delivered: %v", targets)
	}
}
