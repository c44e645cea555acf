package session_test

import (
	"context"
	"testing"
	"time"

	"github.com/sessionauth/caddy-sessionauth/session"
	"github.com/sessionauth/caddy-sessionauth/session/storetest"
)

// A user's trail keeps its newest 1,000 events whether it has a count
// of its own (from 64 events on) or is counted where it lies; the sweep
// shortens it, and a short trail gives its count up.
func TestFileTrailCapWithAndWithoutCount(t *testing.T) {
	clock := storetest.NewClock()
	f := openFile(t, clock.Now, session.FileOptions{NoSync: true})
	ctx := context.Background()
	record := func(user string, n int) {
		for range n {
			e := session.Event{Type: session.EventLogout, At: clock.Now(), UserID: user, SessionID: "s"}
			if err := f.Record(ctx, e, filePolicy); err != nil {
				t.Fatal(err)
			}
			clock.Advance(time.Millisecond)
		}
	}
	trail := func(user string) []session.Event {
		ev, err := f.Events(ctx, user, time.Time{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		return ev
	}
	counts := func() int { return session.FileBucketBytes(f)["evcount keys"] }
	record("short", 63)
	if got := len(trail("short")); got != 63 || counts() != 0 {
		t.Fatalf("63 events: %d kept, %d counts", got, counts())
	}
	first := clock.Now()
	record("long", 1010)
	ev := trail("long")
	if len(ev) != 1000 || counts() != 1 {
		t.Fatalf("1,010 events: %d kept, %d counts", len(ev), counts())
	}
	if oldest := ev[len(ev)-1].At; !oldest.Equal(first.Add(10 * time.Millisecond)) {
		t.Fatalf("the oldest kept is %v, want the 11th (%v)", oldest, first.Add(10*time.Millisecond))
	}
	// All but the last 20 pass their purge time: the sweep drops them,
	// and the trail, now short, is counted where it lies again.
	clock.Advance(first.Add(filePolicy.Retention + 989*time.Millisecond).Sub(clock.Now()))
	if err := f.Sweep(); err != nil {
		t.Fatal(err)
	}
	if got := len(trail("long")); got != 20 || counts() != 0 {
		t.Fatalf("after the sweep: %d kept, %d counts", got, counts())
	}
	record("long", 1000)
	if got := len(trail("long")); got != 1000 || counts() != 1 {
		t.Fatalf("filled again: %d kept, %d counts", got, counts())
	}
}
