package session

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// bbolt reuses the pages of what the sweep dropped but never gives them
// back: a file grown to hold many sessions keeps its size after they
// expire. Compaction copies what the file holds, key by key in order,
// into a new file (pages filled whole: bbolt's Compact), and puts the
// copy at the path. Offline (CompactFile) it works on a file no Caddy
// has open; online (File.Compact) the running store does it, writes
// waiting meanwhile (within their deadline), reads going on.

// CompactReport says what a compaction gave back.
type CompactReport struct {
	Path          string
	Before, After int64 // the file's size in bytes
}

// compactTxSize bounds the bytes one transaction of the copy writes.
const compactTxSize = 64 << 20

// CompactFile compacts the store file at path, which no running Caddy
// may have open (it fails with ErrFileLocked, within a second, if one
// has). The file stays locked throughout, and the copy is locked before
// it takes the path, so no Caddy starts on either meanwhile.
func CompactFile(path string) (CompactReport, error) {
	rep := CompactReport{Path: path}
	info, err := os.Stat(path)
	if err != nil {
		return rep, err
	}
	rep.Before = info.Size()
	if err := precheckLocked(path, time.Second); err != nil {
		return rep, errCompactLocked(path, err)
	}
	src, err := openBolt(path, &bolt.Options{Timeout: time.Second, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return rep, errCompactLocked(path, err)
	}
	defer src.Close()
	if err := checkWithin(src, path, 24*time.Hour, nil); err != nil {
		return rep, err
	}
	dst, err := compactInto(src, path, nil)
	if err != nil {
		return rep, err
	}
	defer dst.Close()
	rep.After, err = fileSize(path)
	return rep, err
}

// Compact compacts the open store in place, while it serves: writes
// wait until the copy is in place (a write whose deadline passes
// meanwhile gets ErrFileTimeout and writes nothing), reads go on. The
// copy is locked before it takes the path, and the store goes on with
// it: no write answered before or after is lost.
func (f *File) Compact() (CompactReport, error) {
	rep := CompactReport{Path: f.path}
	if err := f.ready(); err != nil {
		return rep, err
	}
	if err := f.update(nil); err != nil { // the touches decided so far, in the copy
		return rep, err
	}
	d := f.db
	d.pathMu.Lock()
	defer d.pathMu.Unlock()
	if why := f.moved.Load(); why != nil {
		return rep, fmt.Errorf("session store file %s: %s: it is not compacted until Caddy restarts", f.path, *why)
	}
	var err error
	if rep.Before, err = fileSize(f.path); err != nil {
		return rep, err
	}
	d.writes.Lock()
	defer d.writes.Unlock()
	old := d.cur.Load()
	var dst *bolt.DB
	err = func() (err error) {
		defer f.recovered(&err) // a damaged page: no copy, the store goes on
		dst, err = compactInto(old, f.path, func(db *bolt.DB) {
			db.NoSync, db.MaxBatchSize, db.MaxBatchDelay, db.AllocSize = old.NoSync, old.MaxBatchSize, old.MaxBatchDelay, old.AllocSize
		})
		return err
	}()
	if err != nil {
		return rep, err
	}
	d.swap.Lock() // waits for the reads of the old file still going on
	d.cur.Store(dst)
	d.ident, _ = os.Stat(f.path)
	d.swap.Unlock()
	if err := old.Close(); err != nil {
		f.log.Warn("closing the session store file replaced by its compacted copy: " + err.Error())
	}
	rep.After, err = fileSize(f.path)
	return rep, err
}

// compactInto copies src into a new file next to path, then renames it
// to path, and returns it open (locked). tune, when not nil, sets the
// new file's options before its first write. On failure the new file is
// removed and path is left as it was.
func compactInto(src *bolt.DB, path string, tune func(*bolt.DB)) (*bolt.DB, error) {
	tmp := fmt.Sprintf("%s.compact-%d.tmp", path, os.Getpid())
	os.Remove(tmp) // left by a compaction that was killed
	dst, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: time.Second, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return nil, fmt.Errorf("session store file %s: creating the compacted copy: %w", path, err)
	}
	if tune != nil {
		tune(dst)
	}
	err = bolt.Compact(dst, src, compactTxSize)
	if err == nil && dst.NoSync {
		err = dst.Sync()
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		dst.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("session store file %s: compacting: %w", path, err)
	}
	syncDir(filepath.Dir(path))
	return dst, nil
}

func fileSize(path string) (int64, error) {
	info, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return info.Size(), nil
}

// errCompactLocked explains a file that a running Caddy holds.
func errCompactLocked(path string, err error) error {
	if errors.Is(err, ErrFileLocked) {
		return fmt.Errorf("%s is open in a running Caddy: compact it there with `caddy sessions compact` (without --file), which asks that Caddy's admin API", path)
	}
	return err
}
