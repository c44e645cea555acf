package sessionauth

import (
	"os"
	"testing"
)

// TestMain gives the run its own Caddy data directory: handlers that name
// no store open the file store under it, never the user's real one.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sessionauth-test-")
	if err != nil {
		panic(err)
	}
	os.Setenv("XDG_DATA_HOME", dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
