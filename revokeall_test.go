package sessionauth

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/sessionauth/caddy-sessionauth/session"
	"github.com/sessionauth/caddy-sessionauth/session/storetest"
)

type createdSession struct {
	id   string
	hash [32]byte
}

// signInMany gives each of n users a session in st.
func signInMany(t *testing.T, st session.Store, n int, now time.Time, p session.Policy) []createdSession {
	t.Helper()
	out := make([]createdSession, 0, n)
	for i := 0; i < n; i++ {
		user := fmt.Sprintf("user-%06d", i)
		id, _, hash, err := st.NewCredential(context.Background(), user)
		if err != nil {
			t.Fatal(err)
		}
		s := &session.Session{ID: id, UserID: user, TokenHash: hash, CreatedAt: now, LastActiveAt: now, IP: "192.0.2.1"}
		if _, err := st.Create(context.Background(), s, p, session.Limit{}); err != nil {
			t.Fatal(err)
		}
		out = append(out, createdSession{id, hash})
	}
	return out
}

// Signing everyone out: with ?progress=true the admin API says at once
// how many users it will sign out, before it has ended any session; lines
// follow per batch, the last says done with the count; and every session
// is refused afterwards. 10⁵ sessions in the memory store; 2·10⁴ in the
// file store, whose filling costs a transaction per sign-in (the
// revocation, 500 users a transaction, is the quick part).
func TestRevokeEveryoneAnswersAtOnceAndFinishes(t *testing.T) {
	run := func(t *testing.T, h *Handler, clock *storetest.Clock, sessions []createdSession) {
		n := len(sessions)
		pr, pw := io.Pipe()
		rec := &streamRecorder{ResponseRecorder: httptest.NewRecorder(), w: pw}
		served := make(chan error, 1)
		go func() {
			req := httptest.NewRequest(http.MethodDelete, "/session-auth/sessions?all=true&progress=true", nil)
			served <- adminAPI{}.serve(rec, req)
			pw.Close()
		}()
		lines := bufio.NewScanner(pr)
		var first, last revokeProgress
		for i := 0; lines.Scan(); i++ {
			var p revokeProgress
			if err := json.Unmarshal(lines.Bytes(), &p); err != nil {
				t.Fatalf("line %d: %q: %v", i, lines.Text(), err)
			}
			if i == 0 {
				first = p
			}
			last = p
		}
		if err := <-served; err != nil {
			t.Fatal(err)
		}
		if first.Users != n || first.UsersDone != 0 || first.Revoked != 0 {
			t.Fatalf("first line %+v: want the %d users before any is signed out", first, n)
		}
		if !last.Done || last.Error != "" || last.Revoked != n || last.UsersDone != n {
			t.Fatalf("last line %+v: want done, %d revoked", last, n)
		}
		for _, s := range sessions {
			v, err := h.store.Validate(context.Background(), s.id, s.hash, "192.0.2.1", clock.Now(), h.policy)
			if err != nil || v.Status == session.Valid {
				t.Fatalf("session %s after revoking everyone: %v %v", s.id, v.Status, err)
			}
		}
	}
	t.Run("memory", func(t *testing.T) {
		h, clock := testHandler(t, func(h *Handler) { h.Store = &StoreConfig{Type: "memory"} })
		run(t, h, clock, signInMany(t, h.store, 100_000, clock.Now(), h.policy))
	})
	t.Run("file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "sessions.db")
		clock := storetest.NewClock()
		// Filled without an fsync per sign-in, which would take minutes.
		st, err := session.OpenFile(path, clock.Now, session.FileOptions{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		probe, _ := testHandler(t, func(h *Handler) { h.Store = &StoreConfig{Type: "memory"} })
		sessions := signInMany(t, st, 20_000, clock.Now(), probe.policy)
		st.Close()
		h, _ := testHandler(t, func(h *Handler) {
			h.now = clock.Now
			h.Store = &StoreConfig{Type: "file", Path: path}
		})
		run(t, h, clock, sessions)
	})
}

// streamRecorder hands what the admin API writes to a pipe, as a client
// would read it, flush by flush.
type streamRecorder struct {
	*httptest.ResponseRecorder
	w *io.PipeWriter
}

func (s *streamRecorder) Write(b []byte) (int, error) { return s.w.Write(b) }
func (s *streamRecorder) Flush()                      {}
