package session

import (
	"bytes"
	"encoding/binary"
	"errors"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.uber.org/zap"
)

// The sweep drops what has expired. Each bucket has its own cursor and
// is read a slice (sweepBatch keys) per pass; a bucket that reached its
// end waits for the others, so a round ends after as many passes as the
// buckets' slices add up to, and the sweep rests until the next tick.
// (It once restarted each bucket at its end and ended a round only when
// every bucket was at its end in the same pass: the least common
// multiple of their pass counts, thousands of passes, each holding the
// writer lock.) A slice is read in a read transaction; the writer lock
// is taken only to drop what it found, so an idle sweep writes nothing.

// sweepBucket is how one bucket's expired keys are found and dropped.
type sweepBucket struct {
	name    []byte
	expired func(k, v []byte, now time.Time) bool
	drop    func(tx *bolt.Tx, k []byte, now time.Time) error
}

var sweepBuckets = []sweepBucket{
	{bSessions, func(k, v []byte, now time.Time) bool {
		if at, ok := purgeOf(v); ok {
			return !now.Before(at)
		}
		if at, ok := purgeTime(v, `"PurgeAt":"`); ok {
			return !now.Before(at)
		}
		r := decodeRecord(string(k), v)
		return r != nil && !now.Before(r.PurgeAt)
	}, func(tx *bolt.Tx, k []byte, now time.Time) error {
		if r := getRecord(tx, string(k)); r != nil && !now.Before(r.PurgeAt) {
			return forget(tx, r)
		}
		return nil
	}},
	{bEvents, func(k, v []byte, now time.Time) bool {
		if at, ok := purgeOf(v); ok {
			return !now.Before(at)
		}
		if at, ok := purgeTime(v, `"purge_at":"`); ok {
			return !now.Before(at)
		}
		e, ok := decodeFileEvent(string(firstPart(k)), v)
		return !ok || !now.Before(e.PurgeAt)
	}, dropEvent},
	{bHistory, func(_, v []byte, now time.Time) bool {
		if at, ok := purgeOf(v); ok {
			return !now.Before(at)
		}
		if at, ok := purgeTime(v, `"purge_at":"`); ok {
			return !now.Before(at)
		}
		h, ok := decodeHistory(v)
		return !ok || !now.Before(h.PurgeAt)
	}, nil},
	{bCounters, func(_, v []byte, now time.Time) bool {
		_, end, ok := decodeCounter(v)
		return !ok || !now.Before(end)
	}, nil},
	{bStash, func(_, v []byte, now time.Time) bool {
		return len(v) < 8 || !now.Before(time.UnixMilli(int64(binary.BigEndian.Uint64(v))))
	}, nil},
	{bLinks, func(_, v []byte, now time.Time) bool {
		return decodeLinkSet(v).last() <= now.UnixMilli()
	}, nil},
	{bStats, func(k, _ []byte, now time.Time) bool { return statsExpired(k, now) }, nil},
}

// purgeTime reads a record's purge time without decoding the rest of it,
// which is most of what a sweep would cost, for a record written as
// JSON (purgeOf reads a binary one): the last field named field
// (a quote inside a JSON string is escaped, so no value can fake it).
// Not found (another encoding), the caller decodes the record.
func purgeTime(v []byte, field string) (time.Time, bool) {
	i := bytes.LastIndex(v, []byte(field))
	if i < 0 || isBinary(v) {
		return time.Time{}, false
	}
	rest := v[i+len(field):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return time.Time{}, false
	}
	at, err := time.Parse(time.RFC3339Nano, string(rest[:j]))
	return at, err == nil
}

// dropEvent deletes an event and counts it out of its user's trail.
func dropEvent(tx *bolt.Tx, k []byte, _ time.Time) error {
	if tx.Bucket(bEvents).Get(k) == nil {
		return nil
	}
	errs := []error{tx.Bucket(bEvents).Delete(k)}
	user := firstPart(k)
	if user == nil {
		return errs[0]
	}
	prefix := prefixKey(string(user))
	if n, counted := trailLength(tx, prefix); counted { // file_evcount.go; uncounted, it counts itself
		errs = append(errs, setTrailLength(tx, prefix, max(n, 1)-1))
	}
	return errors.Join(errs...)
}

// sweepRest is how many times a round's own duration the sweep rests
// after it at least: on a large store a round takes seconds, and the
// sweep must not cost more than a few percent of a core (expired
// records are ignored by every read; sweeping them later costs only
// their space meanwhile).
const sweepRest = 50

func (f *File) sweepEvery(d time.Duration) {
	defer f.done.Done()
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			began := time.Now()
			swept := true
			for more := true; more; {
				select {
				case <-f.stop:
					return
				default:
				}
				var err error
				if more, err = f.SweepPass(); err != nil {
					// A damaged page was logged where it was read (see
					// recovered); the next tick tries again.
					f.log.Warn("sweeping expired sessions failed", zap.String("path", f.path), zap.Error(err))
					swept = false
					break
				}
			}
			rest := max(d, sweepRest*time.Since(began))
			if swept {
				f.compactIfSparse() // file_autocompact.go
			}
			t.Reset(rest)
		case <-f.stop:
			return
		}
	}
}

// Sweep drops sessions, events, risk histories and counters past their
// time: one round, pass after pass.
func (f *File) Sweep() error {
	for {
		more, err := f.SweepPass()
		if err != nil || !more {
			return err
		}
	}
}

// SweepPass reads the next slice (at most sweepBatch keys) of the first
// bucket not yet at its end in this round, and drops what has expired.
// It reports whether the round has passes left; the pass after the last
// starts a new round.
func (f *File) SweepPass() (more bool, err error) {
	if err := f.ready(); err != nil {
		return false, err
	}
	now := f.now()
	f.sweepMu.Lock() // the sweep's positions: one sweeper at a time
	defer f.sweepMu.Unlock()
	i := slices.IndexFunc(sweepBuckets, func(b sweepBucket) bool { return !f.sweepDone[string(b.name)] })
	if i < 0 {
		clear(f.sweepDone)
		i = 0
	}
	sb := sweepBuckets[i]
	name := string(sb.name)
	var gone [][]byte
	var next []byte
	err = f.readView(func(tx *bolt.Tx) error {
		gone, next = nil, nil
		c := tx.Bucket(sb.name).Cursor()
		k, v := c.Seek(f.sweepPos[name])
		for n := 0; k != nil && n < sweepBatch; n++ {
			if sb.expired(k, v, now) {
				gone = append(gone, slices.Clone(k))
			}
			k, v = c.Next()
		}
		if k != nil {
			next = slices.Clone(k)
		}
		return nil
	})
	if err != nil {
		return false, err
	}
	if len(gone) > 0 {
		err = f.update(func(tx *bolt.Tx) error {
			var errs []error
			for _, k := range gone {
				if sb.drop != nil {
					errs = append(errs, sb.drop(tx, k, now))
				} else if v := tx.Bucket(sb.name).Get(k); v != nil && sb.expired(k, v, now) {
					errs = append(errs, tx.Bucket(sb.name).Delete(k))
				}
			}
			return errors.Join(errs...)
		})
		if err != nil {
			return false, err
		}
	}
	if next != nil {
		f.sweepPos[name] = next
	} else {
		delete(f.sweepPos, name)
		f.sweepDone[name] = true
	}
	return slices.ContainsFunc(sweepBuckets, func(b sweepBucket) bool { return !f.sweepDone[string(b.name)] }), nil
}
