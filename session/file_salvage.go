package session

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Backup writes a consistent copy of the whole file to w (bbolt's
// Tx.WriteTo in one read transaction, after the touches still pending
// are committed) while the store serves: writes go on meanwhile, and
// the copy holds every write committed before it began. The copy is a
// store file: stop Caddy, put it at the store's path, start Caddy.
func (f *File) Backup(w io.Writer) (n int64, err error) {
	if err := f.ready(); err != nil {
		return 0, err
	}
	f.auto.backups.Add(1) // the sweep does not compact meanwhile
	defer f.auto.backups.Add(-1)
	if err := f.update(nil); err != nil {
		return 0, err
	}
	defer f.recovered(&err)
	err = f.db.View(func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	return n, err
}

// SalvageReport says what Salvage copied and what it could not read.
type SalvageReport struct {
	// Keys copied per bucket (sessions, users, events, ...).
	Copied map[string]int
	// Buckets of which some keys could not be read, with why.
	Lost map[string]string
}

// salvageBatch is the keys written per transaction of the new file.
const salvageBatch = 1000

// Salvage copies what is readable of a damaged store file into a new
// file at to (which must not exist), bucket by bucket, key by key: a
// page that cannot be read costs the keys behind it, not the rest. It
// works on files, offline: the damaged file must not be open in a
// running Caddy. The new file passes bbolt's consistency check. A
// session whose user index entry was lost is refused by the store (it
// is no longer reachable by "sign out everywhere"), never taken as valid.
func Salvage(from, to string) (SalvageReport, error) {
	rep := SalvageReport{Copied: map[string]int{}, Lost: map[string]string{}}
	info, err := os.Stat(from)
	if err != nil {
		return rep, err
	}
	if info.Size() == 0 {
		return rep, fmt.Errorf("%s is empty: there is nothing to salvage", from)
	}
	if _, err := os.Stat(to); err == nil {
		return rep, fmt.Errorf("%s exists: give a new file to salvage into", to)
	}
	src, err := openBolt(from, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return rep, err
	}
	defer src.Close()
	if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
		return rep, err
	}
	dst, err := bolt.Open(to, 0o600, &bolt.Options{Timeout: time.Second, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return rep, err
	}
	// The meta bucket too: it holds the key of the ids' user tags.
	salvaged := append(buckets[:len(buckets):len(buckets)], bMeta)
	err = dst.Update(func(tx *bolt.Tx) error {
		for _, b := range salvaged {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	for _, name := range salvaged {
		if err != nil {
			break
		}
		var n int
		var lost string
		n, lost, err = salvageBucket(src, dst, name)
		rep.Copied[string(name)] = n
		if lost != "" {
			rep.Lost[string(name)] = lost
		}
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = CheckFile(to)
	}
	return rep, err
}

// salvageBucket copies one bucket, going on past a page that faults
// from the key after the last one read, until no further key is
// readable. It returns the keys copied and, when some were not, why.
func salvageBucket(src, dst *bolt.DB, name []byte) (n int, lost string, err error) {
	var last []byte // the last key copied
	var seq uint64
	var batch [][2][]byte
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := dst.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(name)
			for _, kv := range batch {
				if err := b.Put(kv[0], kv[1]); err != nil {
					return err
				}
			}
			return nil
		})
		n += len(batch)
		batch = batch[:0]
		return err
	}
	for {
		progressed := false
		readErr := readGuarded(func() error {
			return src.View(func(tx *bolt.Tx) error {
				b := tx.Bucket(name)
				if b == nil {
					return errors.New("the bucket is missing")
				}
				seq = max(seq, b.Sequence())
				c := b.Cursor()
				k, v := c.First()
				if last != nil {
					if k, v = c.Seek(last); k != nil && bytes.Equal(k, last) {
						k, v = c.Next()
					}
				}
				for ; k != nil; k, v = c.Next() {
					if v == nil && b.Bucket(k) != nil {
						continue // no bucket of ours has buckets inside
					}
					batch = append(batch, [2][]byte{bytes.Clone(k), bytes.Clone(v)})
					last, progressed = batch[len(batch)-1][0], true
					if len(batch) == salvageBatch {
						if err := flush(); err != nil {
							return err
						}
					}
				}
				return nil
			})
		})
		if err := flush(); err != nil {
			return n, lost, err
		}
		if readErr == nil {
			break
		}
		lost = readErr.Error()
		if !progressed {
			break
		}
	}
	if seq > 0 {
		err = dst.Update(func(tx *bolt.Tx) error { return tx.Bucket(name).SetSequence(seq) })
	}
	return n, lost, err
}

// readGuarded runs fn, turning a panic or a memory fault (a page past
// the end of a cut file) into an error.
func readGuarded(fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("unreadable: %v", r)
		}
	}()
	return fn()
}
