package sessionauth

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/sessionauth/caddy-sessionauth/session"
)

// downStore is a store whose every validation fails, as an unreachable
// Redis's would.
type downStore struct{ session.Store }

func (downStore) Validate(context.Context, string, [32]byte, string, time.Time, session.Policy) (session.Validation, error) {
	return session.Validation{}, errors.New("dial tcp 127.0.0.1:6390: connect: connection refused")
}

// People get a page in words when the gateway answers in the app's place
// (503, 429); API clients get JSON.
func TestPeopleGetPagesNotJSON(t *testing.T) {
	page := func(t *testing.T, w *httptest.ResponseRecorder, status int, words string) {
		t.Helper()
		if w.Code != status || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") ||
			!strings.Contains(w.Body.String(), words) || strings.Contains(w.Body.String(), `{"error"`) {
			t.Fatalf("got %d %q: %s", w.Code, w.Header().Get("Content-Type"), w.Body)
		}
	}
	jsonAnswer := func(t *testing.T, w *httptest.ResponseRecorder, status int, code string) {
		t.Helper()
		var body errorBody
		if w.Code != status || json.Unmarshal(w.Body.Bytes(), &body) != nil || body.Error != code {
			t.Fatalf("got %d: %s", w.Code, w.Body)
		}
	}
	browser := func(method, path string, c *http.Cookie) *http.Request {
		r := httptest.NewRequest(method, path, nil)
		r.Header.Set("Accept", "text/html,application/xhtml+xml")
		if c != nil {
			r.AddCookie(c)
		}
		return r
	}

	t.Run("store unavailable", func(t *testing.T) {
		h, _ := testHandler(t, nil)
		c := signIn(t, h, "alice")
		h.store = downStore{h.store}
		wireParts(h)
		w := serve(t, h, browser("GET", "/app", c), &upstream{})
		page(t, w, http.StatusServiceUnavailable, "try again in a few seconds")
		if w.Header().Get("Retry-After") == "" {
			t.Fatal("no Retry-After")
		}
		page(t, serve(t, h, browser("GET", "/.auth/sessions", c), &upstream{}), http.StatusServiceUnavailable, "not answering")
		jsonAnswer(t, serve(t, h, get("/app", c), &upstream{}), http.StatusServiceUnavailable, "store_unavailable")
		api := browser("GET", "/app", c)
		api.Header.Set("Accept", "application/json, text/html")
		jsonAnswer(t, serve(t, h, api, &upstream{}), http.StatusServiceUnavailable, "store_unavailable")
	})
	t.Run("rate limited", func(t *testing.T) {
		h, _ := testHandler(t, func(h *Handler) { h.GuessRate = &Rate{Count: 1, Window: caddy.Duration(time.Minute)} })
		guess := &http.Cookie{Name: "session", Value: "guess"}
		serve(t, h, browser("GET", "/", guess), &upstream{})
		page(t, serve(t, h, browser("GET", "/", guess), &upstream{}), http.StatusTooManyRequests, "Too many attempts")
		jsonAnswer(t, serve(t, h, get("/", guess), &upstream{}), http.StatusTooManyRequests, "rate_limited")
	})
	t.Run("too many sessions", func(t *testing.T) {
		h, _ := testHandler(t, func(h *Handler) { one := 1; h.MaxSessions, h.MaxSessionsMode = &one, "reject" })
		signIn(t, h, "alice")
		up := &upstream{respond: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Session-Login", "alice")
			w.WriteHeader(http.StatusSeeOther)
		}}
		page(t, serve(t, h, browser("POST", "/login", nil), up), http.StatusTooManyRequests, "too many devices")
	})
}
