package session

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The file store keeps the console's counters in bStats, written in the
// transaction of the event they count (so in its group commit):
//
//	'h' + hour (uint64, Unix hours)  -> sign-ins, failed, revocations (3 × uint64)
//	'd' + day (uint64, Unix days)    -> the same per day
//	'r' + seq (uint64)               -> a recent risk or login_failed event (JSON), the newest maxRecentEvents
//
// The sweep drops hours older than StatsHours and days older than
// StatsDays (statsExpired); a new recent event drops the one
// maxRecentEvents before it.
var bStats = []byte("stats")

func statsKey(kind byte, n int64) []byte {
	return binary.BigEndian.AppendUint64([]byte{kind}, uint64(n))
}

// countStat adds one of kind to the hour and the day of at.
func countStat(tx *bolt.Tx, kind byte, at time.Time) error {
	b := tx.Bucket(bStats)
	ms := at.UnixMilli()
	for _, k := range [][]byte{statsKey('h', ms/hourMS), statsKey('d', ms/dayMS)} {
		v := make([]byte, 24)
		copy(v, b.Get(k))
		i := map[byte]int{statSignIn: 0, statFailed: 8, statRevoke: 16}[kind]
		binary.BigEndian.PutUint64(v[i:], binary.BigEndian.Uint64(v[i:])+1)
		if err := b.Put(k, v); err != nil {
			return err
		}
	}
	return nil
}

// noteEvent counts e and keeps it among the recent ones, as its kind
// says; addEvent calls it for every event it writes.
func noteEvent(tx *bolt.Tx, e *Event) error {
	if k := statKind(e); k != 0 {
		if err := countStat(tx, k, e.At); err != nil {
			return err
		}
	}
	if !recentKind(e) {
		return nil
	}
	b := tx.Bucket(bStats)
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	v, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if seq > maxRecentEvents {
		if err := b.Delete(statsKey('r', int64(seq-maxRecentEvents))); err != nil {
			return err
		}
	}
	return b.Put(statsKey('r', int64(seq)), v)
}

// statsExpired: an hour or a day past what the counters keep.
func statsExpired(k []byte, now time.Time) bool {
	if len(k) != 9 {
		return true
	}
	n := int64(binary.BigEndian.Uint64(k[1:]))
	switch k[0] {
	case 'h':
		return n <= now.UnixMilli()/hourMS-StatsHours
	case 'd':
		return n <= now.UnixMilli()/dayMS-StatsDays
	}
	return false
}

// Stats implements Store: the counters, and a walk of the live sessions
// (at most maxStatsWalk) for the breakdowns.
func (f *File) Stats(_ context.Context, now time.Time, p Policy) (*Stats, error) {
	st := newStats(now)
	err := f.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bStats).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if len(k) != 9 {
				continue
			}
			n := int64(binary.BigEndian.Uint64(k[1:]))
			switch k[0] {
			case 'h', 'd':
				if len(v) != 24 {
					continue
				}
				bs, width := st.Hourly, hourMS
				if k[0] == 'd' {
					bs, width = st.Daily, dayMS
				}
				for i, kind := range []byte{statSignIn, statFailed, statRevoke} {
					addTo(bs, width, n, kind, int64(binary.BigEndian.Uint64(v[i*8:])))
				}
			case 'r':
				var e Event
				if json.Unmarshal(v, &e) == nil {
					st.Recent = append(st.Recent, e)
				}
			}
		}
		sc := tx.Bucket(bSessions).Cursor()
		for k, v := sc.First(); k != nil; k, v = sc.Next() {
			if r := decodeRecord(string(k), v); r != nil && !st.countLive(&r.Session, now, p) {
				break
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	st.keepRecent()
	return st, nil
}
