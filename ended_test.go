package sessionauth

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/sessionauth/caddy-sessionauth/session"
)

// noticeLog records the notices queued through it.
type noticeLog struct {
	session.Store
	mu     sync.Mutex
	events []string
}

func (n *noticeLog) Enqueue(ctx context.Context, target string, no session.Notice) error {
	n.mu.Lock()
	n.events = append(n.events, no.Event+" "+no.SessionID)
	n.mu.Unlock()
	return n.Store.Enqueue(ctx, target, no)
}

func (n *noticeLog) seen() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.events...)
}

// Every path that ends sessions goes through one decision: the user's
// own sign-out and a sign-in over an old session tell nobody; an end
// that someone else decided (here, the admin) queues a revoke notice;
// each is logged and forgotten everywhere once.
func TestSessionsEndedNoticesOnlyWhatOthersDecided(t *testing.T) {
	h, clock := testHandler(t, func(h *Handler) { h.Notify = &Notify{URL: "http://127.0.0.1:9/hook", Events: []string{noticeRevoke}} })
	log := &noticeLog{Store: h.store}
	h.store = log
	wireParts(h)

	a := signIn(t, h, "alice")
	logout := httptest.NewRequest("POST", "/.auth/logout", nil)
	logout.AddCookie(a)
	serve(t, h, logout, &upstream{})
	if got := log.seen(); len(got) != 0 {
		t.Fatalf("signing out queued %v, want nothing", got)
	}

	b := signIn(t, h, "alice")
	over := httptest.NewRequest("POST", "/login", nil)
	over.AddCookie(b) // a sign-in over a session this browser holds ends it
	serve(t, h, over, &upstream{respond: func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Session-Login", "alice")
		w.WriteHeader(http.StatusSeeOther)
	}})
	if got := log.seen(); len(got) != 0 {
		t.Fatalf("signing in over an old session queued %v, want nothing", got)
	}

	ended, err := h.store.EndUser(context.Background(), "alice", "", clock.Now(), session.EndRevoked, session.ActorAdmin, h.policy)
	if err != nil || len(ended) != 1 {
		t.Fatalf("admin end: %d ended, %v", len(ended), err)
	}
	h.sessionsEnded(ended, ending{reason: session.EndRevoked, actor: session.ActorAdmin, at: clock.Now()})
	if got := log.seen(); len(got) != 1 || got[0] != noticeRevoke+" "+ended[0].ID {
		t.Fatalf("the admin's end queued %v, want one revoke notice for %s", got, ended[0].ID)
	}
}
