package session

import (
	"context"
	"maps"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Counters (login_rate, guess_rate, proof attempts) are written behind,
// like touches: Hit and Refund answer from memory, over what the file
// holds, and the next group commit writes them. A sign-in counts twice
// (its IP and its user) before it is created: written behind, neither
// waits for a commit of its own. A crash forgets at most the counts of
// the commit in progress, as it does touches: a limit is a rate, not a
// record.
type fileCounts struct {
	mu      sync.Mutex // also orders every Hit and Refund: each reads what the last wrote
	pending map[string]fileCount
}

type fileCount struct {
	n   int64
	end time.Time
}

// Hit implements Store.
func (f *File) Hit(_ context.Context, key string, window time.Duration, now time.Time) (int64, time.Duration, error) {
	if err := f.ready(); err != nil {
		return 0, 0, err
	}
	if f.moved.Load() != nil {
		return 0, 0, f.update(func(*bolt.Tx) error { return nil }) // refused, and says why
	}
	var c fileCount
	err := f.count(key, func(cur fileCount, ok bool) (fileCount, bool) {
		if !ok || !now.Before(cur.end) {
			cur = fileCount{0, msTime(now.Add(window))}
		}
		cur.n++
		c = cur
		return cur, true
	})
	if err != nil {
		return 0, 0, err
	}
	return c.n, c.end.Sub(now), nil
}

// Refund implements Store.
func (f *File) Refund(_ context.Context, key string, now time.Time) error {
	if err := f.ready(); err != nil {
		return err
	}
	return f.count(key, func(cur fileCount, ok bool) (fileCount, bool) {
		if !ok || !now.Before(cur.end) || cur.n <= 0 {
			return cur, false
		}
		cur.n--
		return cur, true
	})
}

// count changes key's counter with change, which gets the counter as
// it stands (written or pending) and returns the new one, or false to
// leave it.
func (f *File) count(key string, change func(cur fileCount, ok bool) (fileCount, bool)) error {
	k := string(prefixKey(key))
	cs := &f.counts
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cur, ok := cs.pending[k]
	if !ok {
		err := f.readView(func(tx *bolt.Tx) error {
			cur.n, cur.end, ok = decodeCounter(tx.Bucket(bCounters).Get([]byte(k)))
			return nil
		})
		if err != nil {
			return err
		}
	}
	next, write := change(cur, ok)
	if !write {
		return nil
	}
	if cs.pending == nil {
		cs.pending = make(map[string]fileCount)
	}
	cs.pending[k] = next
	select {
	case f.kick <- struct{}{}:
	default:
	}
	return nil
}

// pendingCounts is what the next commit writes of the counters.
func (f *File) pendingCounts() map[string]fileCount {
	f.counts.mu.Lock()
	defer f.counts.mu.Unlock()
	return maps.Clone(f.counts.pending)
}

// countsCommitted forgets the counters a commit wrote, unless they
// changed since.
func (f *File) countsCommitted(written map[string]fileCount) {
	f.counts.mu.Lock()
	defer f.counts.mu.Unlock()
	for k, c := range written {
		if cur, ok := f.counts.pending[k]; ok && cur == c {
			delete(f.counts.pending, k)
		}
	}
}
