package sessionauth

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sessionauth/caddy-sessionauth/session"
)

// With no store given, a handler opens the file store at its default
// place under Caddy's data directory, 0700 and 0600; handlers naming the
// same file share one store.
func TestDefaultStoreIsTheFile(t *testing.T) {
	data := t.TempDir()
	t.Setenv("XDG_DATA_HOME", data)
	a, _ := testHandler(t, func(h *Handler) { h.Store = &StoreConfig{} })
	if a.Store.Type != "file" {
		t.Fatalf("default store %q", a.Store.Type)
	}
	path := filepath.Join(data, "caddy", "session_auth", "sessions.db")
	for p, want := range map[string]os.FileMode{filepath.Dir(path): 0o700 | os.ModeDir, path: 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode(), want)
		}
	}
	b, _ := testHandler(t, func(h *Handler) { h.Store = &StoreConfig{Type: "file", Path: path} })
	fa, _ := session.As[*session.File](a.store)
	fb, _ := session.As[*session.File](b.store)
	if fa == nil || fa != fb {
		t.Fatal("two handlers on the same file have two stores")
	}
	if d := a.Store.describe(); d != "file "+path {
		t.Fatalf("described as %q", d)
	}
}

func TestStoreSettingsThatDoNotFit(t *testing.T) {
	for _, tc := range []struct {
		c    StoreConfig
		want string
	}{
		{StoreConfig{Type: "memory", Path: "/x.db"}, "store memory takes no path"},
		{StoreConfig{Type: "file", URL: "redis://x"}, "store file takes no Redis settings"},
		{StoreConfig{Type: "redis", URL: "redis://x", Path: "/x.db"}, "store redis takes no path"},
		{StoreConfig{Type: "bolt"}, `store "bolt" must be file, memory or redis`},
	} {
		tc.c.applyDefaults()
		if err := tc.c.check(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.c, err, tc.want)
		}
	}
}
