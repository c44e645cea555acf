package session

import (
	"bytes"
	"encoding/binary"

	bolt "go.etcd.io/bbolt"
)

// A user's trail is capped at maxEventsPerUser, so adding an event must
// know the trail's length. A count per user (bEvCount) costs a key per
// user, about 65 bytes of the file per session when every session is a
// different user's, while most trails hold a handful of events: so a
// trail is counted where it lies (a cursor over its keys) until it
// reaches countedFrom events, and only then gets a count of its own.
// A count, when there is one, is the trail's length; without one, the
// trail is shorter than countedFrom. (Files written before kept a count
// for every trail: it is right, and goes once the trail is short.)
const countedFrom = 64

// trailLength is the length of the trail under prefix (prefixKey of its
// user), and whether it has a count of its own.
func trailLength(tx *bolt.Tx, prefix []byte) (uint64, bool) {
	if c := tx.Bucket(bEvCount).Get(prefix); len(c) == 8 {
		return binary.BigEndian.Uint64(c), true
	}
	var n uint64
	c := tx.Bucket(bEvents).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && n < countedFrom; k, _ = c.Next() {
		n++
	}
	return n, false
}

// setTrailLength records that the trail under prefix holds n events: a
// count of its own from countedFrom on, none below.
func setTrailLength(tx *bolt.Tx, prefix []byte, n uint64) error {
	if n < countedFrom {
		if tx.Bucket(bEvCount).Get(prefix) == nil {
			return nil
		}
		return tx.Bucket(bEvCount).Delete(prefix)
	}
	return tx.Bucket(bEvCount).Put(prefix, u64(n))
}
