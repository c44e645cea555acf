package session_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/sessionauth/caddy-sessionauth/session"
	"github.com/sessionauth/caddy-sessionauth/session/storetest"
)

const safariUA = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15"

// realSession is a browser sign-in with every field a sign-in fills.
func realSession(t testing.TB, st session.Store, i int, now time.Time) *session.Session {
	t.Helper()
	user := fmt.Sprintf("user-%08x@example.com", uint32(i)*2654435761) // in no order, as people sign in
	id, _, hash, err := st.NewCredential(context.Background(), user)
	if err != nil {
		t.Fatal(err)
	}
	ip := fmt.Sprintf("10.%d.%d.%d", i*7919&255, i>>8&255, i>>16&255)
	return &session.Session{ID: id, UserID: user, TokenHash: hash, Email: user, Name: "Ada Lovelace", IP: ip, LoginIP: ip,
		UserAgent: safariUA, Device: "Mac", DeviceType: "desktop", Browser: "Safari", OS: "macOS", Country: "DE", City: "Berlin",
		Lat: 52.52, Lon: 13.405, HasCoord: true, LoginCountry: "DE", DeviceID: "0123456789abcdef0123456789abcdef",
		AuthMethod: session.MethodPassword, CreatedAt: now, LastActiveAt: now}
}

// The file holds at most 1 KiB per session: N sign-ins, one per user
// (every user's own keys count against one session), each with every
// field a browser's sign-in fills, its index entries, its audit event
// and its user's history, as written and once compacted. Written to,
// bbolt's pages are about two thirds full (keys come in no order), which
// the log shows; compacted, they are full. (A file also touched and
// swept: TestFileLiveBytesPerSession.)
// Sizes are bbolt's pages in use (File.Size): below 16 MiB the file
// itself is that rounded up to a power of two, above it 16 MiB more.
func TestFileBytesPerSession(t *testing.T) {
	const n = 5000
	clock := storetest.NewClock()
	f := openFile(t, clock.Now, session.FileOptions{NoSync: true})
	p := filePolicy
	for i := range n {
		s := realSession(t, f, i, clock.Now())
		if _, err := f.Create(context.Background(), s, p, session.Limit{Max: 5}); err != nil {
			t.Fatal(err)
		}
		clock.Advance(time.Millisecond)
	}
	live, err := f.Size()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d sessions written: %d bytes (%d per session); in use by bucket %v", n, live, live/n, session.FileBucketBytes(f))
	if live/n > 1024 {
		t.Fatalf("%d bytes per session in the file as written, more than 1 KiB", live/n)
	}
	start := time.Now()
	if _, err := f.Compact(); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start) // writes wait this long: logged for the docs, not asserted
	compacted, err := f.Size()
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(f.Path())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("compacted in %v: %d bytes (%d per session), the file %d bytes", took, compacted, compacted/n, fi.Size())
	if compacted/n > 1024 {
		t.Fatalf("%d bytes per session in the compacted file, more than 1 KiB", compacted/n)
	}
}
