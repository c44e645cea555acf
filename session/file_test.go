package session_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/sessionauth/caddy-sessionauth/session"
	"github.com/sessionauth/caddy-sessionauth/session/storetest"
)

func openFile(t testing.TB, now func() time.Time, o session.FileOptions) *session.File {
	t.Helper()
	f, err := session.OpenFile(filepath.Join(t.TempDir(), "sessions.db"), now, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestFileConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, now func() time.Time) session.Store {
		return openFile(t, now, session.FileOptions{})
	}, storetest.Hooks{DropIndex: func(t *testing.T, st session.Store, user string) {
		if err := session.DropFileUserIndex(st.(*session.File), user); err != nil {
			t.Fatal(err)
		}
	}})
}
