package session

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
	"go.uber.org/zap"
)

// ErrFileDamaged: the store's file cannot be read as it was written. The
// error names the file and the command that salvages what is readable.
var ErrFileDamaged = errors.New("the file is damaged")

// fileState is what a File needs besides its data: how it was opened,
// the write deadline, the watch on its path and the sweep's rounds.
type fileState struct {
	opts FileOptions
	log  *zap.Logger

	// Open happens once, at Caddy's start (or at first use outside
	// Caddy): `caddy validate` provisions the config and must not take
	// the file's lock from the Caddy that runs it.
	openMu sync.Mutex
	isOpen atomic.Bool
	opened chan struct{} // closed once the file is open

	writers chan struct{}          // bounds the writes in flight (file_group.go)
	group   fileGroup              // the writes queued for the next commit (file_group.go)
	sights  fileSights             // sightings written behind (file_sight.go)
	counts  fileCounts             // counters written behind (file_counts.go)
	moved   atomic.Pointer[string] // why writes are refused (file_watch.go)
	held    *os.File               // the lock kept on the file written back

	sweepMu   sync.Mutex
	sweepDone map[string]bool // buckets at their end in this round (file_sweep.go)
	auto      fileAutoCompact // compaction during the sweep (file_autocompact.go)
}

// maxWriters bounds the writes waiting for the file at once: with a
// frozen disk, more wait for a slot and give up at their deadline rather
// than pile up goroutines.
const maxWriters = 256

// defaultCheckBudget bounds the consistency check at open.
const defaultCheckBudget = 10 * time.Second

// NewFile returns the store at path without touching the file: Open (or
// the first operation) opens it. Caddy opens it when the config starts,
// so that validating a config takes no lock.
func NewFile(path string, now func() time.Time, o FileOptions) *File {
	if now == nil {
		now = time.Now
	}
	log := o.Logger
	if log == nil {
		log = zap.NewNop()
	}
	return &File{
		path: path, now: now,
		pending:  make(map[string]fileTouch),
		decoded:  make(map[string]*decodedRecord),
		claimed:  make(map[string]bool),
		sweepPos: make(map[string][]byte),
		kick:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		fileState: fileState{
			opts: o, log: log,
			opened:    make(chan struct{}),
			writers:   make(chan struct{}, maxWriters),
			sweepDone: make(map[string]bool),
		},
	}
}

// ready opens the file if nothing has yet.
func (f *File) ready() error {
	if f.isOpen.Load() {
		return nil
	}
	return f.Open()
}

// awaitOpen waits until the file is open, the deadline passes or ctx
// ends, for the background readers that must not open it themselves.
func (f *File) awaitOpen(ctx context.Context, deadline time.Time) bool {
	if f.isOpen.Load() {
		return true
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-f.opened:
		return true
	case <-t.C:
	case <-ctx.Done():
	case <-f.stop:
	}
	return false
}

// Open opens (or creates) the file, with its directory 0700 and the
// file 0600, once; later calls return nil. Before bbolt reads an
// existing file, its size and both meta pages are checked (bbolt would
// fault on a cut file, and silently roll back to the other meta page
// when one is damaged); once open, bbolt's consistency check runs for at
// most CheckBudget. A damaged or empty file is ErrFileDamaged; a file
// another process holds is ErrFileLocked, within a second.
func (f *File) Open() error {
	f.openMu.Lock()
	defer f.openMu.Unlock()
	if f.isOpen.Load() {
		return nil
	}
	select {
	case <-f.stop:
		return fmt.Errorf("session store file %s: closed", f.path)
	default:
	}
	path := f.path
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("session store file %s: %w", path, err)
	}
	info, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("session store file %s: %w", path, err)
	default:
		if err := precheckLocked(path, time.Second); err != nil {
			return err
		}
		if info.Mode().Perm()&0o077 != 0 {
			f.log.Warn("the session store file can be read by other users of this machine: it holds the sessions' hashes and personal data; chmod 600 it",
				zap.String("path", path), zap.String("mode", info.Mode().Perm().String()))
		}
	}
	db, err := openBolt(path, &bolt.Options{Timeout: time.Second, FreelistType: bolt.FreelistMapType, NoSync: f.opts.NoSync})
	if err != nil {
		return err
	}
	budget := f.opts.CheckBudget
	if budget <= 0 {
		budget = defaultCheckBudget
	}
	if err := checkWithin(db, path, budget, f.log); err != nil {
		db.Close()
		return err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range buckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		counts, err := openOutbox(tx)
		if err != nil {
			return err
		}
		f.omu.Lock() // the dispatcher may already be asking for Targets
		f.outboxN = counts
		f.omu.Unlock()
		meta, err := tx.CreateBucketIfNotExists(bMeta)
		if err != nil {
			return err
		}
		if f.tagKey = bytes.Clone(meta.Get(kTagKey)); f.tagKey == nil {
			if f.tagKey, err = newTagKey(); err != nil {
				return err
			}
			return meta.Put(kTagKey, f.tagKey)
		}
		return nil
	})
	if err != nil {
		db.Close()
		return fmt.Errorf("session store file %s: %w", path, err)
	}
	f.db = newFileDB(db)
	f.done.Add(1)
	go f.flushLoop()
	if f.opts.Sweep > 0 {
		f.done.Add(1)
		go f.sweepEvery(f.opts.Sweep)
	}
	if f.opts.CheckEvery > 0 {
		f.done.Add(1)
		go f.watchEvery(f.opts.CheckEvery)
	}
	f.isOpen.Store(true)
	close(f.opened)
	return nil
}

// openBolt opens the file with bbolt, turning its lock timeout into
// ErrFileLocked and its complaints (or a fault) about the file's
// contents into ErrFileDamaged.
func openBolt(path string, o *bolt.Options) (db *bolt.DB, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = damaged(path, fmt.Errorf("reading it failed: %v", r))
		}
	}()
	db, err = bolt.Open(path, 0o600, o)
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		return nil, fmt.Errorf("session store file %s: %w (is another Caddy running with the same store?)", path, ErrFileLocked)
	case errors.Is(err, bolterrors.ErrInvalid), errors.Is(err, bolterrors.ErrChecksum), errors.Is(err, bolterrors.ErrVersionMismatch):
		return nil, damaged(path, err)
	case err != nil:
		return nil, fmt.Errorf("session store file %s: %w", path, err)
	}
	return db, nil
}

// damaged is the error for a damaged file: what is wrong, and what to do.
func damaged(path string, cause error) error {
	return fmt.Errorf("session store file %s: %w (%v): Caddy does not start on it rather than lose or undo sessions and revocations; "+
		"copy what is readable into a new file with `caddy sessions salvage %s %s.salvaged`, move that file to %s, "+
		"and start again (see docs/operations.md)", path, ErrFileDamaged, cause, path, path, path)
}

// checkWithin runs bbolt's consistency check on db for at most budget.
// A check that takes longer goes on in the background (logging what it
// finds) and the store opens: a large file must not keep Caddy from
// starting for minutes.
func checkWithin(db *bolt.DB, path string, budget time.Duration, log *zap.Logger) error {
	if log == nil {
		log = zap.NewNop()
	}
	tx, err := db.Begin(false)
	if err != nil {
		return fmt.Errorf("session store file %s: %w", path, err)
	}
	ch := tx.Check()
	t := time.NewTimer(budget)
	defer t.Stop()
	var errs []error
	for {
		select {
		case err, more := <-ch:
			if !more {
				_ = tx.Rollback()
				if len(errs) > 0 {
					return damaged(path, errors.Join(errs...))
				}
				return nil
			}
			if errs = append(errs, err); len(errs) == 5 {
				go drainCheck(tx, ch, zap.NewNop(), path)
				return damaged(path, errors.Join(errs...))
			}
		case <-t.C:
			log.Warn("the session store file's consistency check takes longer than its budget at start: it goes on in the background",
				zap.String("path", path), zap.Duration("budget", budget))
			go drainCheck(tx, ch, log, path)
			return nil
		}
	}
}

// drainCheck reads the rest of a check (bbolt's goroutine waits on the
// channel) and ends its read transaction.
func drainCheck(tx *bolt.Tx, ch <-chan error, log *zap.Logger, path string) {
	var errs []error
	for err := range ch {
		errs = append(errs, err)
	}
	_ = tx.Rollback()
	if len(errs) > 0 {
		log.Error("the session store file is damaged: requests that read a damaged page get 503; "+
			"stop Caddy and run `caddy sessions salvage` (see docs/operations.md)",
			zap.String("path", path), zap.Error(errors.Join(errs...)))
		return
	}
	log.Info("the session store file's consistency check found nothing wrong", zap.String("path", path))
}
