package session

import (
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"
	"go.uber.org/zap"
)

// ErrFileTimeout: a write to the file store did not finish within its
// deadline (FileOptions.WriteTimeout), like a Redis read_timeout. The
// caller answers 503; the transaction either commits whole later or not
// at all (bbolt's transactions are atomic), never half.
var ErrFileTimeout = errors.New("session store file: the write did not finish in time (is the disk stuck?)")

// errGaveUp: the caller of a write had left (at its deadline) when the
// write's turn came; it wrote nothing.
var errGaveUp = errors.New("session store file: the caller gave up waiting")

// attempt is one bounded write. Its transaction takes mu while it runs
// the write, which touches the caller's variables, and does nothing once
// the caller has given up: the caller's variables are the transaction's
// only while the caller waits.
type attempt struct {
	mu   sync.Mutex
	gone bool
}

// testHookCommit, set by tests only, runs where a commit would write.
var testHookCommit atomic.Pointer[func()]

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
