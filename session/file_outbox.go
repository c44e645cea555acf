package session

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The file's outbox: one bucket whose keys are channelID(target) and a
// sequence number, so that each target's channel is a run of keys that
// Claim reads from its start, oldest first.

// openOutbox counts each channel's notices, and moves notices an older
// version queued under a bare sequence number into their channel.
func openOutbox(tx *bolt.Tx) (map[string]int, error) {
	b := tx.Bucket(bOutbox)
	counts := make(map[string]int)
	type move struct{ from, to, v []byte }
	var moves []move
	err := b.ForEach(func(k, v []byte) error {
		var d fileDelivery
		if json.Unmarshal(v, &d) != nil || d.Target == "" {
			return nil // Claim skips it as before
		}
		counts[d.Target]++
		if len(k) == 8 {
			moves = append(moves, move{slices.Clone(k), append(channelID(d.Target), k...), slices.Clone(v)})
		}
		return nil
	})
	for _, m := range moves {
		if err == nil {
			err = b.Put(m.to, m.v)
		}
		if err == nil {
			err = b.Delete(m.from)
		}
	}
	return counts, err
}

// Enqueue implements Store. Each channel is bounded (OutboxCap).
func (f *File) Enqueue(_ context.Context, target string, n Notice) error {
	if err := f.ready(); err != nil { // opening sets the counts, under omu
		return err
	}
	f.omu.Lock()
	defer f.omu.Unlock()
	if f.outboxN[target] >= OutboxCap {
		return ErrOutboxFull
	}
	v, err := json.Marshal(fileDelivery{outboxEntry: outboxEntry{Target: target, Notice: n}, Due: f.now()})
	if err != nil {
		return err
	}
	err = f.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bOutbox)
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		return b.Put(append(channelID(target), u64(seq)...), v)
	})
	if err == nil {
		f.outboxN[target]++
		f.queued.wake(target)
	}
	return err
}

// Claim implements Store: the due deliveries of target's channel not
// claimed since this process opened the file, oldest first.
func (f *File) Claim(ctx context.Context, _, target string, max int, block time.Duration) ([]Delivery, error) {
	deadline := time.Now().Add(block)
	if !f.awaitOpen(ctx, deadline) {
		return nil, ctx.Err() // not open yet (Caddy opens it at start): nothing due
	}
	prefix := channelID(target)
	for {
		now := f.now()
		var out []Delivery
		var next time.Duration // until the earliest delivery not yet due, if any
		f.omu.Lock()
		err := f.readView(func(tx *bolt.Tx) error {
			c := tx.Bucket(bOutbox).Cursor()
			for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && len(out) < max; k, v = c.Next() {
				id := hex.EncodeToString(k)
				if f.claimed[id] {
					continue
				}
				var d fileDelivery
				if json.Unmarshal(v, &d) != nil || d.Target != target {
					continue
				}
				if wait := d.Due.Sub(now); wait > 0 {
					if next == 0 || wait < next {
						next = wait
					}
					continue
				}
				out = append(out, Delivery{ID: id, Target: d.Target, Notice: d.Notice, Attempt: d.Attempt})
			}
			return nil
		})
		for _, d := range out {
			f.claimed[d.ID] = true
		}
		f.omu.Unlock()
		if err != nil {
			return nil, err
		}
		if len(out) > 0 || !time.Now().Before(deadline) {
			return out, nil
		}
		if err := awaitOutbox(ctx, f.queued.of(target), deadline, next); err != nil {
			return nil, err
		}
	}
}

func outboxKey(id string) ([]byte, error) {
	k, err := hex.DecodeString(id)
	if err != nil || len(k) != 16 {
		return nil, fmt.Errorf("outbox delivery id %q: not one of this store's", id)
	}
	return k, nil
}

// Ack implements Store.
func (f *File) Ack(_ context.Context, d Delivery) error {
	return f.settle(d.ID, d.Target, nil)
}

// Retry implements Store.
func (f *File) Retry(_ context.Context, d Delivery, at time.Time) error {
	v, err := json.Marshal(fileDelivery{outboxEntry: outboxEntry{Target: d.Target, Notice: d.Notice, Attempt: d.Attempt + 1}, Due: at})
	if err != nil {
		return err
	}
	return f.settle(d.ID, d.Target, v)
}

// settle ends the claim on a delivery: it leaves the outbox (v nil, an
// Ack) or goes back as v (a Retry, which wakes a Claim waiting on its
// channel). The channel's count follows what was there before.
func (f *File) settle(id, target string, v []byte) error {
	k, err := outboxKey(id)
	if err != nil {
		return err
	}
	if err := f.ready(); err != nil { // opening sets the counts, under omu
		return err
	}
	f.omu.Lock()
	defer f.omu.Unlock()
	existed := false
	err = f.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bOutbox)
		existed = b.Get(k) != nil
		if v == nil {
			return b.Delete(k)
		}
		return b.Put(k, v)
	})
	if err != nil {
		return err
	}
	delete(f.claimed, id)
	switch {
	case v == nil && existed:
		f.outboxN[target]--
	case v != nil && !existed:
		f.outboxN[target]++
	}
	if f.outboxN[target] <= 0 {
		delete(f.outboxN, target)
	}
	if v != nil {
		f.queued.wake(target)
	}
	return nil
}

// Targets implements Store.
func (f *File) Targets(context.Context) ([]string, error) {
	f.omu.Lock()
	defer f.omu.Unlock()
	var out []string
	for target, n := range f.outboxN {
		if n > 0 {
			out = append(out, target)
		}
	}
	slices.Sort(out)
	return out, nil
}
