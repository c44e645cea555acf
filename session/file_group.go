package session

import (
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.uber.org/zap"
)

// Group commits. Every write of the file store (a sign-in, a sign-out, a
// counter, a touch) joins a queue; one goroutine commits what is queued
// as one transaction, so one fsync answers every write that came while
// the previous commit ran. A sign-in then costs no fsync of its own: with
// 64 clients signing in at once, dozens share each one. Each write still
// gets its own answer, and only once its transaction is on disk (a crash
// after the answer loses nothing answered). A write that fails as a
// write (not with an answer such as ErrNotFound) is taken out of the
// group and run alone, so that it fails only itself: the others run
// again without it, as with bbolt's Batch. Writes without a caller
// (written behind: a sighting) ride along in the next group.
type fileGroup struct {
	mu      sync.Mutex
	queue   []*groupMember
	behind  int  // queued members that nobody waits for (hasPending)
	stopped bool // the committer has ended: writers commit themselves

	commitMu sync.Mutex // one committer at a time
}

// groupMember is one write in a group.
type groupMember struct {
	fn func(tx *bolt.Tx) error // nil: commit what is pending, nothing more
	a  *attempt                // the caller's deadline (nil: none)
	// done receives the answer once the write is on disk or has failed;
	// nil for a write nobody waits for.
	done chan error
	slot bool   // holds a place among the writers in flight
	then func() // runs once the member is finished, committed or not
	// A write behind that failed alone is logged and dropped, for a
	// failing write would fail again.
	what string
}

// update runs fn in a write transaction, in a group commit, after the
// touches and the writes behind that came before it; it returns once
// the transaction is on disk. It is bounded by the write deadline: past
// it the caller gets ErrFileTimeout, and the write either commits whole
// later or not at all.
func (f *File) update(fn func(tx *bolt.Tx) error) error {
	if err := f.ready(); err != nil {
		return err
	}
	if fn == nil && (!f.hasPending() || f.moved.Load() != nil) {
		return nil // nothing to flush, or nowhere to: reads go on
	}
	m := &groupMember{fn: fn, done: make(chan error, 1)}
	d := f.opts.WriteTimeout
	if d <= 0 {
		f.enqueue(m)
		return <-m.done
	}
	t := time.NewTimer(d)
	defer t.Stop()
	// At most maxWriters writes wait for the disk: with a frozen disk
	// the rest give up at their deadline rather than pile up.
	select {
	case f.writers <- struct{}{}:
	case <-t.C:
		return ErrFileTimeout
	}
	m.a, m.slot = &attempt{}, true
	f.enqueue(m)
	select {
	case err := <-m.done:
		return err
	case <-t.C:
	}
	if f.dequeue(m) {
		<-f.writers // not begun: its place goes to the next writer at once
		return ErrFileTimeout
	}
	m.a.mu.Lock() // waits for the write's own work, never for the disk
	m.a.gone = true
	m.a.mu.Unlock()
	select {
	case err := <-m.done:
		return err
	default:
		return ErrFileTimeout
	}
}

// writeBehind queues fn for the next group commit and returns at once;
// then runs when it is finished (committed, dropped or failed). It
// returns false, queuing nothing, when the writers in flight are at
// their bound: the caller then writes and waits.
func (f *File) writeBehind(what string, fn func(tx *bolt.Tx) error, then func()) bool {
	select {
	case f.writers <- struct{}{}:
	default:
		return false
	}
	f.enqueue(&groupMember{fn: fn, slot: true, then: then, what: what})
	return true
}

// enqueue adds m to the next group and wakes the committer.
func (f *File) enqueue(m *groupMember) {
	g := &f.group
	g.mu.Lock()
	g.queue = append(g.queue, m)
	if m.done == nil {
		g.behind++
	}
	stopped := g.stopped
	g.mu.Unlock()
	if stopped {
		f.commitQueued() // closing: no committer any more
		return
	}
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// dequeue takes m out of the queue if no commit has taken it yet.
func (f *File) dequeue(m *groupMember) bool {
	g := &f.group
	g.mu.Lock()
	defer g.mu.Unlock()
	for i, q := range g.queue {
		if q == m {
			g.queue = append(g.queue[:i], g.queue[i+1:]...)
			return true
		}
	}
	return false
}

// hasPending: touches, counters or writes behind wait for a commit.
func (f *File) hasPending() bool {
	f.group.mu.Lock()
	behind := f.group.behind
	f.group.mu.Unlock()
	if behind > 0 {
		return true
	}
	f.counts.mu.Lock()
	counts := len(f.counts.pending)
	f.counts.mu.Unlock()
	if counts > 0 {
		return true
	}
	f.pmu.Lock()
	defer f.pmu.Unlock()
	return len(f.pending) > 0
}

// flushLoop is the committer: it commits what is queued, one group per
// commit, until the store closes, and then what is left.
func (f *File) flushLoop() {
	defer f.done.Done()
	for {
		select {
		case <-f.kick:
			f.commitQueued()
		case <-f.stop:
			f.group.mu.Lock()
			f.group.stopped = true
			f.group.mu.Unlock()
			f.commitQueued()
			return
		}
	}
}

// commitQueued commits groups until the queue, the touches and the
// counters are empty.
func (f *File) commitQueued() {
	g := &f.group
	g.commitMu.Lock()
	defer g.commitMu.Unlock()
	for {
		g.mu.Lock()
		members := g.queue
		g.queue = nil
		g.mu.Unlock()
		f.pmu.Lock()
		touches := maps.Clone(f.pending)
		f.pmu.Unlock()
		counts := f.pendingCounts()
		if len(members) == 0 && len(touches) == 0 && len(counts) == 0 {
			return
		}
		for len(touches) > maxTouchesPerCommit { // file_touchslices.go
			f.commitGroup(nil, sliceOfTouches(touches), nil)
		}
		f.commitGroup(members, touches, counts)
	}
}

// commitGroup commits members, touches and counters in one transaction. A member
// that fails as a write leaves the group, which runs again without it,
// and then runs alone for its own answer.
func (f *File) commitGroup(members []*groupMember, touches map[string]fileTouch, counts map[string]fileCount) {
	var alone []*groupMember
	for {
		if len(members) == 0 && len(touches) == 0 && len(counts) == 0 {
			break
		}
		answers, failed, err := f.tryGroup(members, touches, counts)
		if failed >= 0 {
			alone = append(alone, members[failed])
			members = append(members[:failed:failed], members[failed+1:]...)
			continue
		}
		if err != nil {
			f.failGroup(members, err)
			break
		}
		f.pmu.Lock()
		for id, t := range touches {
			if cur, ok := f.pending[id]; ok && cur == t {
				delete(f.pending, id)
			}
		}
		f.pmu.Unlock()
		f.countsCommitted(counts)
		for i, m := range members {
			f.finish(m, answers[i])
		}
		break
	}
	for _, m := range alone {
		answers, _, err := f.tryGroup([]*groupMember{m}, nil, nil)
		if err == nil {
			err = answers[0]
		}
		if err != nil && m.done == nil {
			f.log.Error("a write of the session store file written behind failed, and is dropped",
				zap.String("path", f.path), zap.String("write", m.what), zap.Error(err))
		}
		f.finish(m, err)
	}
}

// failGroup answers err to every member of a group that did not commit.
// Writes behind go back to the queue's front, as touches stay pending:
// the next commit tries them again.
func (f *File) failGroup(members []*groupMember, err error) {
	var again []*groupMember
	for _, m := range members {
		if m.done == nil && !errors.Is(err, ErrFileDamaged) && f.moved.Load() == nil {
			again = append(again, m)
			continue
		}
		f.finish(m, err)
	}
	if len(again) > 0 {
		f.group.mu.Lock()
		f.group.queue = append(again, f.group.queue...)
		f.group.mu.Unlock()
	}
}

// finish answers m and gives back its place.
func (f *File) finish(m *groupMember, err error) {
	if m.done != nil {
		m.done <- err
	} else {
		f.group.mu.Lock()
		f.group.behind--
		f.group.mu.Unlock()
	}
	if m.slot {
		<-f.writers
	}
	if m.then != nil {
		m.then()
	}
}

// tryGroup runs one transaction of touches, counters and members. It returns each
// member's answer, or the index of a member that failed as a write (the
// transaction rolled back), or the error of the transaction itself.
func (f *File) tryGroup(members []*groupMember, touches map[string]fileTouch, counts map[string]fileCount) (answers []error, failed int, err error) {
	failed = -1
	answers = make([]error, len(members))
	defer f.recovered(&err) // a damaged page under the touches: every member's 503
	err = f.db.Update(func(tx *bolt.Tx) error {
		if why := f.moved.Load(); why != nil {
			return fmt.Errorf("session store file %s: %s: writes are refused until Caddy restarts", f.path, *why)
		}
		tx.OnCommit(func() { f.gen.Add(1) }) // what Validate decoded may be stale
		for id, t := range touches {
			if err := applyTouch(tx, id, t); err != nil {
				return err
			}
		}
		for k, c := range counts {
			if err := tx.Bucket(bCounters).Put([]byte(k), encodeCounter(c.n, c.end)); err != nil {
				return err
			}
		}
		for i, m := range members {
			answer, asWrite := f.runMember(tx, m)
			if asWrite {
				failed = i
				return answer
			}
			answers[i] = answer
		}
		if hook := testHookCommit.Load(); hook != nil {
			(*hook)() // a test's stuck disk: the writer lock held, as in a hung fsync
		}
		return nil
	})
	if failed >= 0 {
		return nil, failed, err // the failed member's own error
	}
	return answers, -1, err
}

// runMember runs one member's write in tx: its answer, and whether it
// failed as a write (the transaction must roll back).
func (f *File) runMember(tx *bolt.Tx, m *groupMember) (answer error, asWrite bool) {
	if m.fn == nil {
		return nil, false
	}
	if m.a != nil {
		m.a.mu.Lock()
		defer m.a.mu.Unlock()
		if m.a.gone {
			return errGaveUp, false // its caller has left: it writes nothing
		}
	}
	returned := false
	defer func() { asWrite = asWrite || !returned }() // a panic (a damaged page) fails it as a write
	defer f.recovered(&answer)
	err := m.fn(tx)
	returned = true
	if err != nil && isTxError(err) {
		return err, true
	}
	return err, false // an answer, not a failure: the rest commits
}

// An answer that is not a failure of the file (ErrNotFound, say) comes
// before the operation writes anything; isTxError tells the two apart.
func isTxError(err error) bool {
	return !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrLimitReached) && !errors.Is(err, ErrTooManyTokens)
}
