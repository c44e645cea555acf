package session

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
)

// bbolt's file begins with two meta pages (page 0 and page 1), each a
// 16-byte page header and then: magic, version, page size, flags (4
// bytes each), the root bucket (16), the freelist page, the high-water
// page count and the transaction id (8 each), and an FNV-64a checksum of
// everything before it, in the machine's byte order. A commit writes the
// meta page txid%2, so both hold a recent state.
const (
	boltMagic    = 0xED0CDAED
	boltVersion  = 2
	metaAt       = 16
	metaSumAt    = metaAt + 56
	metaEnd      = metaSumAt + 8
	metaPgidAt   = metaAt + 40
	metaTxidAt   = metaAt + 48
	metaPageSzAt = metaAt + 8
)

type boltMeta struct {
	pageSize  uint32
	pgid      uint64 // pages below the high-water mark
	txid      uint64
	ok        bool
	complaint string
}

func readMeta(b []byte) boltMeta {
	if len(b) < metaEnd {
		return boltMeta{complaint: "missing"}
	}
	e := binary.NativeEndian
	h := fnv.New64a()
	h.Write(b[metaAt:metaSumAt])
	m := boltMeta{pageSize: e.Uint32(b[metaPageSzAt:]), pgid: e.Uint64(b[metaPgidAt:]), txid: e.Uint64(b[metaTxidAt:])}
	switch {
	case e.Uint32(b[metaAt:]) != boltMagic:
		m.complaint = "not a bbolt meta page"
	case e.Uint32(b[metaAt+4:]) != boltVersion:
		m.complaint = "unknown bbolt version"
	case e.Uint64(b[metaSumAt:]) != h.Sum64():
		m.complaint = "checksum does not match"
	default:
		m.ok = true
	}
	return m
}

// precheck reads the start of an existing store file and says what is
// wrong with it before bbolt maps it: empty, cut short (bbolt would
// fault reading past its end) or a meta page damaged (bbolt would take
// the other, silently undoing the last transaction when it was the newer).
func precheck(r io.ReaderAt, size int64) error {
	if size == 0 {
		return errors.New("it is empty (0 bytes), while a store is never empty: a new store is not made over it; " +
			"delete it to start with no sessions, or restore a backup")
	}
	head := make([]byte, metaEnd)
	if n, _ := r.ReadAt(head, 0); n < metaEnd {
		return fmt.Errorf("it is cut short (%d bytes)", size)
	}
	m0 := readMeta(head)
	sizes := []uint32{m0.pageSize}
	if !m0.ok {
		sizes = []uint32{uint32(os.Getpagesize()), 4096, 8192, 16384, 32768, 65536}
	}
	var m1 boltMeta
	for _, ps := range sizes {
		if ps < metaEnd || ps > 1<<20 {
			continue
		}
		if n, _ := r.ReadAt(head, int64(ps)); n == metaEnd {
			if m1 = readMeta(head); m1.ok {
				break
			}
		}
	}
	switch {
	case !m0.ok && !m1.ok:
		return fmt.Errorf("neither meta page is readable (first: %s; second: %s)", m0.complaint, or(m1.complaint, "missing"))
	case !m0.ok:
		return fmt.Errorf("its first meta page is damaged (%s): bbolt would fall back to the second and may undo the last write", m0.complaint)
	case !m1.ok:
		return fmt.Errorf("its second meta page is damaged (%s): bbolt would fall back to the first and may undo the last write", or(m1.complaint, "missing"))
	}
	m := m0
	if m1.txid > m0.txid {
		m = m1
	}
	if need := int64(m.pgid) * int64(m.pageSize); size < need {
		return fmt.Errorf("it is cut short: %d bytes, while its pages need %d", size, need)
	}
	return nil
}

func or(s, alt string) string {
	if s == "" {
		return alt
	}
	return s
}

// precheckLocked runs precheck while holding the file's lock, so that a
// running Caddy's writes are never read half-done: a file another
// process holds is ErrFileLocked, as bbolt would say, within wait.
func precheckLocked(path string, wait time.Duration) error {
	fd, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("session store file %s: %w", path, err)
	}
	defer fd.Close()
	if !lockFile(fd, wait) {
		return fmt.Errorf("session store file %s: %w (is another Caddy running with the same store?)", path, ErrFileLocked)
	}
	defer unlockFile(fd)
	info, err := fd.Stat()
	if err != nil {
		return fmt.Errorf("session store file %s: %w", path, err)
	}
	if err := precheck(fd, info.Size()); err != nil {
		return damaged(path, err)
	}
	return nil
}

// CheckFile checks a store file that no process holds open (a backup, a
// salvaged file): its size and meta pages, then every page (bbolt's
// consistency check), without writing to it.
func CheckFile(path string) error {
	if err := precheckLocked(path, time.Second); err != nil {
		return err
	}
	db, err := openBolt(path, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return err
	}
	defer db.Close()
	return checkWithin(db, path, 24*time.Hour, nil)
}
