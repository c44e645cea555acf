package sessionauth

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	bolt "go.etcd.io/bbolt"
)

// A page of the file store found damaged while Caddy runs: the request
// that reads it gets 503 with Retry-After (a page in words), and the
// process goes on serving.
func TestFileStoreDamagedPageIs503(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sessions.db")
	store := func(h *Handler) {
		h.Store = &StoreConfig{Type: "file", Path: path}
		h.LoginRate = &Rate{Count: 1000, Window: caddy.Duration(time.Minute)}
	}
	h, _ := testHandler(t, store)
	var cookies []*http.Cookie
	for i := range 30 {
		cookies = append(cookies, signIn(t, h, fmt.Sprint("user", i)))
	}
	if err := h.Cleanup(); err != nil { // the last user: the file closes
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var root int64
	_ = db.View(func(tx *bolt.Tx) error { root = int64(tx.Bucket([]byte("sessions")).Root()); return nil })
	pageSize := db.Info().PageSize
	db.Close()
	if root == 0 {
		t.Fatal("the sessions bucket has no page of its own")
	}

	h, _ = testHandler(t, store)
	if w := serve(t, h, get("/", cookies[0]), &upstream{}); w.Code != http.StatusOK {
		t.Fatalf("before the damage: %d", w.Code)
	}
	fd, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fd.WriteAt(make([]byte, pageSize), root*int64(pageSize)); err != nil {
		t.Fatal(err)
	}
	fd.Close()
	for _, c := range cookies[1:3] {
		w := serve(t, h, get("/", c), &upstream{})
		if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
			t.Fatalf("a request reading the damaged page: %d, Retry-After %q", w.Code, w.Header().Get("Retry-After"))
		}
	}
}
