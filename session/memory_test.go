package session_test

import (
	"os"
	"testing"
	"time"

	"github.com/sessionauth/caddy-sessionauth/session"
	"github.com/sessionauth/caddy-sessionauth/session/storetest"
)

// newMemory is a memory store closed at the end of the test.
func newMemory(t testing.TB, now func() time.Time) *session.Memory {
	t.Helper()
	m, err := session.NewMemory(now, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func TestMemoryConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, now func() time.Time) session.Store {
		return newMemory(t, now)
	}, storetest.Hooks{DropIndex: func(t *testing.T, st session.Store, user string) {
		if err := session.DropFileUserIndex(st.(*session.Memory).File, user); err != nil {
			t.Fatal(err)
		}
	}})
}

func TestMemoryStashExpires(t *testing.T) {
	c := storetest.NewClock()
	storetest.StashExpires(t, newMemory(t, c.Now), c)
}

// The memory store leaves nothing behind: Close removes its file.
func TestMemoryCloseRemovesItsFile(t *testing.T) {
	m, err := session.NewMemory(nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	path := m.Path()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the memory store's file: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("after Close the file is still there: %v", err)
	}
}
