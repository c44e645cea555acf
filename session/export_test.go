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
