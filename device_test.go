package sessionauth

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sessionauth/caddy-sessionauth/internal/redisserver"
	"github.com/sessionauth/caddy-sessionauth/session"
)

// The device cookie's id is kept as its digest, on every store: what the
// store holds (session, audit event) is no cookie a browser could send as
// a known device, and the same cookie is still known at the next sign-in.
func TestDeviceCookieIsKeptAsItsDigest(t *testing.T) {
	stores := map[string]func(t *testing.T) *StoreConfig{
		"memory": func(t *testing.T) *StoreConfig { return &StoreConfig{Type: "memory"} },
		"file": func(t *testing.T) *StoreConfig {
			return &StoreConfig{Type: "file", Path: filepath.Join(t.TempDir(), "sessions.db")}
		},
		"redis": func(t *testing.T) *StoreConfig {
			return &StoreConfig{Type: "redis", URL: "redis://" + redisserver.Start(t).Addr}
		},
	}
	for name, store := range stores {
		t.Run(name, func(t *testing.T) {
			h, _ := testHandler(t, func(h *Handler) { h.Store = store(t) })
			user := "device-" + name
			signInWith := func(device string) *session.Session {
				t.Helper()
				up := &upstream{respond: func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Session-Login", user)
					w.WriteHeader(http.StatusSeeOther)
				}}
				r := httptest.NewRequest("POST", "/login", nil)
				if device != "" {
					r.Header.Set("Cookie", "session_device="+device)
				}
				w := serve(t, h, r, up)
				for _, c := range w.Result().Cookies() {
					if c.Name == "session" && c.Value != "" {
						id, _, _ := strings.Cut(c.Value, ".")
						s, err := h.store.Get(context.Background(), id)
						if err != nil {
							t.Fatal(err)
						}
						return s
					}
				}
				t.Fatalf("no session cookie: %v", w.Header())
				return nil
			}
			const known, other = "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"
			first := signInWith(known)
			if first.DeviceID == known || first.DeviceID != session.DeviceDigest(known) {
				t.Fatalf("the store keeps device id %q for cookie %q", first.DeviceID, known)
			}
			events, err := h.store.Events(context.Background(), user, time.Time{}, 100)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range events {
				if e.DeviceID == known {
					t.Fatalf("an audit event keeps the device cookie: %+v", e)
				}
			}
			if again := signInWith(known); again.Risk != "" {
				t.Fatalf("the same device cookie again: risk %q", again.Risk)
			}
			if s := signInWith(other); s.Risk != session.FlagNewDevice {
				t.Fatalf("another device cookie: risk %q", s.Risk)
			}
		})
	}
}
