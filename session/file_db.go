package session

import (
	"os"
	"sync"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"
)

// fileDB is the store's open bbolt file, which compaction replaces with
// a compacted copy while the store serves (file_compact.go). Every use
// goes through it, so that none reaches the file that was replaced:
//   - writes hold writes shared: a compaction holds it whole while it
//     copies, so no write is made to the file being copied (writes wait,
//     within their deadline);
//   - every use holds swap shared: the compaction holds it whole only to
//     put the copy in place, so once it lets go nothing uses the old file.
type fileDB struct {
	cur    atomic.Pointer[bolt.DB]
	writes sync.RWMutex
	swap   sync.RWMutex

	// pathMu is held by what checks or changes the file at the path:
	// the watch (file_watch.go) and compaction. ident is the open file's
	// device and inode.
	pathMu sync.Mutex
	ident  os.FileInfo
}

func newFileDB(db *bolt.DB) *fileDB {
	d := &fileDB{}
	d.cur.Store(db)
	d.ident, _ = os.Stat(db.Path()) // bbolt holds its lock: the file it opened
	return d
}

// View runs fn in a read transaction.
func (d *fileDB) View(fn func(*bolt.Tx) error) error {
	d.swap.RLock()
	defer d.swap.RUnlock()
	return d.cur.Load().View(fn)
}

// Update runs fn in a write transaction.
func (d *fileDB) Update(fn func(*bolt.Tx) error) error {
	d.writes.RLock()
	defer d.writes.RUnlock()
	d.swap.RLock()
	defer d.swap.RUnlock()
	return d.cur.Load().Update(fn)
}

// Batch runs fn in a write transaction shared with concurrent callers.
func (d *fileDB) Batch(fn func(*bolt.Tx) error) error {
	d.writes.RLock()
	defer d.writes.RUnlock()
	d.swap.RLock()
	defer d.swap.RUnlock()
	return d.cur.Load().Batch(fn)
}

// Info is bbolt's information on the open file.
func (d *fileDB) Info() *bolt.Info {
	d.swap.RLock()
	defer d.swap.RUnlock()
	return d.cur.Load().Info()
}

// Close closes the open file.
func (d *fileDB) Close() error {
	d.writes.Lock()
	defer d.writes.Unlock()
	d.swap.Lock()
	defer d.swap.Unlock()
	return d.cur.Load().Close()
}
