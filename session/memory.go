package session

import (
	"fmt"
	"os"
	"time"
)

// Memory is the store for `store memory`: the file store on a file of its
// own in a new temporary directory, committed without fsync and removed
// at Close. The sessions live as long as the process (a caddy reload
// keeps the store: it lives in a caddy.UsagePool). Being the file store,
// it has the file store's rules, written once in Go (and once in Lua for
// Redis); the page cache keeps the file in memory.
type Memory struct {
	*File
	dir string
}

// NewMemory returns an empty memory store. now is its clock (time.Now
// when nil); sweep is how often expired records are dropped (0: never,
// for tests that sweep by hand with Sweep).
func NewMemory(now func() time.Time, sweep time.Duration) (*Memory, error) {
	dir, err := os.MkdirTemp("", "caddy-sessionauth-memory-")
	if err != nil {
		return nil, fmt.Errorf("making the memory store's directory: %w", err)
	}
	f, err := OpenFile(dir+"/sessions.db", now, FileOptions{Sweep: sweep, NoSync: true})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return &Memory{File: f, dir: dir}, nil
}

// Close closes the store and removes its file: its sessions are gone.
func (m *Memory) Close() error {
	err := m.File.Close()
	if rmErr := os.RemoveAll(m.dir); err == nil {
		err = rmErr
	}
	return err
}

var _ Store = (*Memory)(nil)
