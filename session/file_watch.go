package session

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.uber.org/zap"
)

// The store keeps its file open: deleted or replaced under it, the file
// it writes is no longer the one at its path. Another Caddy could then
// start on the path, and the next start would read whatever is there
// (nothing, or an older copy that undoes later revocations). So the
// path is checked every CheckEvery to still name the open file; when it
// does not, the store
//   - refuses writes from then on (sign-ins, sign-outs and revocations
//     get 503; sessions already signed in go on being validated), so
//     nothing is written where no restart would find it;
//   - writes what the open file holds back to the path (a file found
//     there is moved aside to <path>.replaced-<time>, never lost), and
//     keeps that new file locked, so no other Caddy starts on it;
//   - says all this in the log, at error level.
// A restart of Caddy then opens the written-back file with every
// sign-in and revocation that was answered.

// errBarrier ends the transaction that waits out the writes in flight.
var errBarrier = errors.New("barrier")

func (f *File) watchEvery(d time.Duration) {
	defer f.done.Done()
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			f.checkPath()
		case <-f.stop:
			return
		}
	}
}

// checkPath compares the file at the path with the open file (device
// and inode) and acts once when they differ.
func (f *File) checkPath() {
	if f.moved.Load() != nil {
		return
	}
	f.db.pathMu.Lock() // a compaction puts its copy at the path meanwhile
	defer f.db.pathMu.Unlock()
	open := f.db.ident
	if open == nil {
		return
	}
	var why string
	switch cur, err := os.Stat(f.path); {
	case errors.Is(err, fs.ErrNotExist):
		why = "the file was deleted while Caddy had it open"
	case err != nil:
		return // unreadable for now: look again next time
	case !os.SameFile(open, cur):
		why = "the file was replaced while Caddy had it open"
	default:
		return
	}
	f.moved.Store(&why)
	// Every write transaction begun before now has ended once this one
	// has the writer lock, and every later one sees moved and writes
	// nothing: the copy below holds every answered write.
	_ = f.db.Update(func(*bolt.Tx) error { return errBarrier })
	where, aside, err := f.writeBack()
	fields := []zap.Field{zap.String("path", f.path), zap.String("what", why)}
	if aside != "" {
		fields = append(fields, zap.String("found_there_moved_to", aside))
	}
	if err != nil {
		f.log.Error("the session store file is gone from its path: writes are refused (503) until Caddy restarts, "+
			"and writing the open data back failed: do not restart Caddy before copying it out with `caddy sessions backup`",
			append(fields, zap.Error(err))...)
		return
	}
	if where != f.path {
		f.log.Error("the session store file is gone from its path, and another process holds the file now there: "+
			"writes are refused (503) until Caddy restarts; the open data was written to written_to: stop both, and put the right file in place",
			append(fields, zap.String("written_to", where))...)
		return
	}
	f.log.Error("the session store file is gone from its path: the open data was written back there and is kept locked; "+
		"writes are refused (503) until Caddy restarts, which then opens it with everything answered so far",
		fields...)
}

// writeBack writes a consistent copy of the open file to the path,
// moving a file found there aside, and locks the copy. It returns where
// the copy went and where the file found there went.
func (f *File) writeBack() (where, aside string, err error) {
	stamp := time.Now().UTC().Format("20060102T150405Z")
	tmp := fmt.Sprintf("%s.%d.tmp", f.path, os.Getpid())
	if err := f.copyTo(tmp); err != nil {
		return "", "", err
	}
	if cur, err := os.Open(f.path); err == nil {
		free := lockFile(cur, 0)
		if free {
			unlockFile(cur)
		}
		cur.Close()
		if !free {
			where = f.path + ".open-" + stamp
			return where, "", os.Rename(tmp, where)
		}
		aside = f.path + ".replaced-" + stamp
		if err := os.Rename(f.path, aside); err != nil {
			return "", "", err
		}
	}
	if err := os.Rename(tmp, f.path); err != nil {
		return "", aside, err
	}
	syncDir(filepath.Dir(f.path))
	held, err := os.Open(f.path)
	if err != nil {
		return "", aside, err
	}
	if !lockFile(held, 0) {
		held.Close()
		return f.path, aside, fmt.Errorf("could not lock %s", f.path)
	}
	f.held = held
	return f.path, aside, nil
}

// copyTo writes a consistent copy of the open file to a new file at
// path, 0600, on disk before it returns.
func (f *File) copyTo(path string) error {
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Backup(out)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
	}
	return err
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// releaseHeld lets go of the lock kept on a written-back file.
func (f *File) releaseHeld() error {
	if f.held == nil {
		return nil
	}
	unlockFile(f.held)
	return f.held.Close()
}
