package session

import (
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.uber.org/zap"
)

// ErrFileTimeout: a write to the file store did not finish within its
// deadline (FileOptions.WriteTimeout), like a Redis read_timeout. The
// caller answers 503; the transaction either commits whole later or not
// at all (bbolt's transactions are atomic), never half.
var ErrFileTimeout = errors.New("session store file: the write did not finish in time (is the disk stuck?)")

// errGaveUp rolls back a transaction whose caller has already returned.
var errGaveUp = errors.New("session store file: the caller gave up waiting")

// attempt is one bounded operation. Its transaction enters before it
// touches anything the caller reads, and does nothing once the caller
// has given up: the caller's variables are the transaction's only while
// the caller waits.
type attempt struct {
	mu   sync.Mutex
	gone bool
}

// enter starts the transaction's work, or refuses it: the caller gave
// up, or the file no longer is at its path (file_watch.go).
func (a *attempt) enter(f *File) error {
	if why := f.moved.Load(); why != nil {
		return fmt.Errorf("session store file %s: %s: writes are refused until Caddy restarts", f.path, *why)
	}
	if a == nil {
		return nil
	}
	a.mu.Lock()
	if a.gone {
		a.mu.Unlock()
		return errGaveUp
	}
	return nil
}

// leave ends the work enter started (before the commit).
func (a *attempt) leave() {
	if a != nil {
		a.mu.Unlock()
	}
	if hook := testHookCommit.Load(); hook != nil {
		(*hook)() // a test's stuck disk: the writer lock held, as in a hung fsync
	}
}

// testHookCommit, set by tests only, runs where a commit would write.
var testHookCommit atomic.Pointer[func()]

func (f *File) hasPending() bool {
	f.pmu.Lock()
	defer f.pmu.Unlock()
	return len(f.pending) > 0
}

// bounded runs op within the write deadline. op runs in a goroutine of
// its own, so that the caller returns at the deadline even when the
// disk hangs in a commit; at most maxWriters such goroutines exist, and
// one that reaches bbolt's lock after its caller left writes nothing.
// A panic in op (bbolt on a damaged page) becomes an error.
func (f *File) bounded(op func(a *attempt) error) error {
	d := f.opts.WriteTimeout
	if d <= 0 {
		var err error
		func() {
			defer f.recovered(&err)
			err = op(nil)
		}()
		return err
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case f.writers <- struct{}{}:
	case <-t.C:
		return ErrFileTimeout
	}
	a := &attempt{}
	done := make(chan error, 1)
	go func() {
		defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
		defer func() { <-f.writers }()
		var err error
		defer func() { done <- err }()
		defer f.recovered(&err)
		err = op(a)
	}()
	select {
	case err := <-done:
		return err
	case <-t.C:
	}
	a.mu.Lock() // waits for the transaction's own work, never for the disk
	a.gone = true
	a.mu.Unlock()
	select {
	case err := <-done:
		return err
	default:
		return ErrFileTimeout
	}
}

// readView runs fn in a read transaction, a damaged page an error. A
// read needs no deadline: bbolt's readers never wait for the writer (a
// stuck commit holds the writer lock only), and a read that must first
// commit pending touches does that through update, which has one.
func (f *File) readView(fn func(tx *bolt.Tx) error) (err error) {
	defer f.recovered(&err)
	return f.db.View(fn)
}

// recovered turns a panic of bbolt (a damaged page: an id out of range,
// a fault reading the memory map) into an error for the caller, who
// answers 503, and logs it: the process lives.
func (f *File) recovered(err *error) {
	r := recover()
	if r == nil {
		return
	}
	*err = fmt.Errorf("session store file %s: %w (reading it failed: %v)", f.path, ErrFileDamaged, r)
	f.log.Error("the session store file is damaged: this request gets 503; stop Caddy and run `caddy sessions salvage` (see docs/operations.md)",
		zap.String("path", f.path), zap.Any("panic", r), zap.ByteString("stack", debug.Stack()))
}
