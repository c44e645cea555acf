package session

import (
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.uber.org/zap"
)

// Compaction during the sweep. bbolt reuses the pages of what the sweep
// dropped but never gives them back, so a file that once held many more
// sessions than it does now keeps its size. After each round, the sweep
// compacts the file online (File.Compact: writes wait for the copy, reads
// go on) when most of its pages are free and the file is large enough
// for the space to matter, at most once per interval of the store's
// clock, never while a backup is being written (the backup's read would
// hold the copy's switch, and writes with it, until it ends). Writes
// wait for the copy, which takes time in proportion to what the file
// holds (about 0.25 s per 4 MiB in use on a busy 2-core machine): a file
// with more than maxLive in use is not compacted on its own, where
// sign-ins would wait past their deadline, but named in the log for
// `caddy sessions compact` at a quiet hour.
var autoCompact = struct {
	minFile int64         // the file's size on disk, at least
	free    float64       // the share of its pages that are free, more than
	maxLive int64         // the bytes of the pages in use, at most
	every   time.Duration // at most one compaction per interval
}{4 << 20, 0.5, 32 << 20, time.Hour}

// fileAutoCompact is the sweep's compaction state.
type fileAutoCompact struct {
	backups atomic.Int32 // backups being written: no compaction meanwhile

	mu   sync.Mutex
	last time.Time // when the sweep last compacted (or tried), by the store's clock
}

// Stats is bbolt's count of the open file's pages.
func (d *fileDB) Stats() bolt.Stats {
	d.swap.RLock()
	defer d.swap.RUnlock()
	return d.cur.Load().Stats()
}

// freeShare is the share of the file's pages (up to the last one in use)
// that are free or freed by a commit that readers may still see, and
// the bytes of the others.
func (f *File) freeShare() (share float64, live int64, err error) {
	var pages, pageSize int64
	err = f.readView(func(tx *bolt.Tx) error {
		pageSize = int64(tx.DB().Info().PageSize)
		pages = tx.Size() / pageSize
		return nil
	})
	if err != nil || pages == 0 {
		return 0, 0, err
	}
	s := f.db.Stats()
	free := int64(s.FreePageN + s.PendingPageN)
	return float64(free) / float64(pages), (pages - free) * pageSize, nil
}

// compactIfSparse compacts the file when the sweep's thresholds say so,
// and logs the sizes before and after. It reports whether it compacted.
func (f *File) compactIfSparse() bool {
	a := &f.auto
	a.mu.Lock()
	defer a.mu.Unlock()
	now := f.now()
	if !a.last.IsZero() && now.Sub(a.last) < autoCompact.every {
		return false
	}
	if a.backups.Load() > 0 {
		return false // the next round tries again
	}
	size, err := fileSize(f.path)
	if err != nil || size < autoCompact.minFile {
		return false
	}
	free, live, err := f.freeShare()
	if err != nil || free <= autoCompact.free {
		return false
	}
	a.last = now // a failure, or the hint below, too waits for the next interval
	if live > autoCompact.maxLive {
		f.log.Info("the session store file is mostly free space, but too large to compact while it serves without sign-ins waiting past their deadline: run `caddy sessions compact` at a quiet hour",
			zap.String("path", f.path), zap.Int64("bytes", size), zap.Int64("bytes_in_use", live), zap.Float64("free_pages_share", free))
		return false
	}
	began := time.Now()
	rep, err := f.Compact()
	if err != nil {
		f.log.Warn("compacting the session store file during the sweep failed", zap.String("path", f.path), zap.Error(err))
		return false
	}
	f.log.Info("compacted the session store file during the sweep",
		zap.String("path", f.path), zap.Int64("bytes_before", rep.Before), zap.Int64("bytes_after", rep.After),
		zap.Float64("free_pages_share", free), zap.Duration("writes_waited", time.Since(began)))
	return true
}
