package session

import (
	"context"
	"encoding/json"
	"time"

	bolt "go.etcd.io/bbolt"
)

// EndUsers implements ManyEnder: one transaction, so one fsync, for all
// of users.
func (f *File) EndUsers(_ context.Context, users []string, at time.Time, reason, actor string, p Policy) ([]*Session, error) {
	at = msTime(at)
	var ended []*Session
	err := f.update(func(tx *bolt.Tx) error {
		ended = nil
		for _, user := range users {
			for _, r := range userRecords(tx, user, at) {
				if !r.Active() || p.Expired(&r.Session, at) {
					continue
				}
				e, err := f.end(tx, r, at, reason, actor, p)
				if err != nil {
					return err
				}
				ended = append(ended, e)
			}
			if err := capEnded(tx, user, at, p); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return ended, nil
}

// EnqueueMany implements ManyEnqueuer: one transaction for the notices
// the channel has room for.
func (f *File) EnqueueMany(_ context.Context, target string, ns []Notice) (int, error) {
	if err := f.ready(); err != nil { // opening sets the counts, under omu
		return 0, err
	}
	f.omu.Lock()
	defer f.omu.Unlock()
	room := max(OutboxCap-f.outboxN[target], 0)
	ns = ns[:min(len(ns), room)]
	if len(ns) == 0 {
		return 0, nil
	}
	due := f.now()
	err := f.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bOutbox)
		for _, n := range ns {
			v, err := json.Marshal(fileDelivery{outboxEntry: outboxEntry{Target: target, Notice: n}, Due: due})
			if err != nil {
				return err
			}
			seq, err := b.NextSequence()
			if err != nil {
				return err
			}
			if err := b.Put(append(channelID(target), u64(seq)...), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	f.outboxN[target] += len(ns)
	f.queued.wake(target)
	return len(ns), nil
}
