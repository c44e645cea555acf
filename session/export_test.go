package session

import (
	"errors"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// DropFileUserIndex does the same in the file store.
func DropFileUserIndex(f *File, user string) error {
	return f.update(func(tx *bolt.Tx) error {
		var keys [][]byte
		scanPrefix(tx.Bucket(bUsers), prefixKey(user), func(k, _ []byte) { keys = append(keys, slices.Clone(k)) })
		for _, k := range keys {
			if err := tx.Bucket(bUsers).Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}

// SetSweepBatch makes sweep slices small, for tests with small stores.
func SetSweepBatch(n int) (restore func()) {
	old := sweepBatch
	sweepBatch = n
	return func() { sweepBatch = old }
}

// FileCommits counts the file's committed write transactions.
func FileCommits(f *File) uint64 { return f.gen.Load() }

// CheckFilePath runs the watch on the file's path once.
func CheckFilePath(f *File) { f.checkPath() }

// HoldCommits makes every write stall where it would commit, as on a
// frozen disk, until release is called.
func HoldCommits() (release func()) {
	held := make(chan struct{})
	hook := func() { <-held }
	testHookCommit.Store(&hook)
	return func() {
		testHookCommit.Store(nil)
		close(held)
	}
}

// SessionsRootPage is the page of the sessions bucket's root.
func SessionsRootPage(f *File) (int64, int, error) {
	var id int64
	err := f.db.View(func(tx *bolt.Tx) error {
		id = int64(tx.Bucket(bSessions).Root())
		return nil
	})
	return id, f.db.Info().PageSize, err
}

// FileBucketBytes is what each bucket's pages hold (in use), by name.
func FileBucketBytes(f *File) map[string]int {
	out := map[string]int{}
	_ = f.db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			s := b.Stats()
			out[string(name)] = s.LeafInuse + s.BranchInuse
			out[string(name)+" alloc"] = s.LeafAlloc + s.BranchAlloc
			out[string(name)+" keys"] = s.KeyN
			return nil
		})
	})
	return out
}

// HoldNextCommit makes writes stall where they would commit, as on a
// frozen disk: held is closed once one has stalled there.
func HoldNextCommit() (held <-chan struct{}, release func()) {
	stalled := make(chan struct{})
	var once sync.Once
	resume := make(chan struct{})
	hook := func() {
		once.Do(func() { close(stalled) })
		<-resume
	}
	testHookCommit.Store(&hook)
	return stalled, func() {
		testHookCommit.Store(nil)
		close(resume)
	}
}

// QueuedWrites counts the writes waiting for the next group commit.
func QueuedWrites(f *File) int {
	f.group.mu.Lock()
	defer f.group.mu.Unlock()
	return len(f.group.queue)
}

// WriteThenFail writes a stash entry under key and then fails with err,
// as a write that fails half-way: nothing of it may stay.
func WriteThenFail(f *File, key string, fail error) error {
	return f.update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bStash).Put([]byte(key), u64(^uint64(0))); err != nil {
			return err
		}
		return fail
	})
}

// CrashFile ends the store as a crash would: the touches, counters and
// writes behind that wait for a commit are lost, not committed.
func CrashFile(f *File) error {
	var err error
	f.once.Do(func() {
		f.group.commitMu.Lock() // a commit in progress finishes first
		f.group.mu.Lock()
		f.group.queue, f.group.behind, f.group.stopped = nil, 0, true
		f.group.mu.Unlock()
		f.pmu.Lock()
		clear(f.pending)
		f.pmu.Unlock()
		f.counts.mu.Lock()
		clear(f.counts.pending)
		f.counts.mu.Unlock()
		err = f.db.Close()
		f.group.commitMu.Unlock()
		close(f.stop)
		f.done.Wait()
		err = errors.Join(err, f.releaseHeld())
	})
	return err
}

// FilePages is the file's pages: in all, free and pending.
func FilePages(f *File) (all, free, pending int) {
	_ = f.db.View(func(tx *bolt.Tx) error {
		all = int(tx.Size() / int64(f.db.Info().PageSize))
		return nil
	})
	s := f.db.Stats()
	return all, s.FreePageN, s.PendingPageN
}

// SetAutoCompact sets the sweep's compaction thresholds.
func SetAutoCompact(minFile int64, free float64, every time.Duration) (restore func()) {
	old := autoCompact
	autoCompact.minFile, autoCompact.free, autoCompact.every = minFile, free, every
	return func() { autoCompact = old }
}

// SetAutoCompactMaxLive sets the bytes in use past which the sweep
// does not compact.
func SetAutoCompactMaxLive(n int64) (restore func()) {
	old := autoCompact.maxLive
	autoCompact.maxLive = n
	return func() { autoCompact.maxLive = old }
}

// CompactIfSparse runs the sweep's compaction check once.
func CompactIfSparse(f *File) bool { return f.compactIfSparse() }

// BackingUp makes the store count a backup in progress until done.
func BackingUp(f *File) (done func()) {
	f.auto.backups.Add(1)
	return func() { f.auto.backups.Add(-1) }
}
