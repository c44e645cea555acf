package session

import (
	"slices"

	bolt "go.etcd.io/bbolt"
)

// DropUserIndex loses user's index of sessions in the memory store, as
// Redis does when it evicts the key, for the conformance suite.
func DropUserIndex(m *Memory, user string) {
	m.mu.Lock()
	delete(m.users, user)
	m.mu.Unlock()
}

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
