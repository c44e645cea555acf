package sessionauth

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/sessionauth/caddy-sessionauth/session"
)

// revokeBatch is how many users one store operation of "revoke everyone"
// covers: one transaction (and fsync) of the file store per batch, not
// per user, and a progress line per batch.
const revokeBatch = 500

// Unwrap is the store itself, for what it can do beyond session.Store
// (session.EndUsers, session.EnqueueMany).
func (p *pooledStore) Unwrap() session.Store { return p.Store }

// revokeProgress is a line of "revoke everyone" with ?progress=true.
type revokeProgress struct {
	Users     int    `json:"users"`      // users with sessions, in every store
	UsersDone int    `json:"users_done"` // of them, those whose sessions are ended
	Revoked   int    `json:"revoked"`    // sessions ended so far
	Done      bool   `json:"done,omitempty"`
	Error     string `json:"error,omitempty"`
}

// revokeEveryone ends every active session of every user, in every
// store: the emergency stop. It asks for ?all=true so that no stray
// DELETE does it. It goes through the users revokeBatch at a time, and
// carries on to the end when the client goes away. With ?progress=true
// the answer is a stream of JSON lines: the count of users at once, then
// one line per batch, the last with "done" (or "error").
func (a adminAPI) revokeEveryone(w http.ResponseWriter, r *http.Request, stores []storeRef) error {
	if r.URL.Query().Get("all") != "true" {
		return apiError(http.StatusBadRequest, "revoking every session needs ?all=true")
	}
	ctx := context.WithoutCancel(r.Context())
	users := make([][]string, len(stores))
	var p revokeProgress
	for i, ref := range stores {
		us, err := ref.store.Users(ctx)
		if err != nil {
			return storeError(err)
		}
		users[i] = us
		p.Users += len(us)
	}
	progress := r.URL.Query().Get("progress") == "true"
	enc := json.NewEncoder(w)
	say := func() {
		if progress {
			_ = enc.Encode(p) // a client gone away is not our error: the work goes on
			_ = http.NewResponseController(w).Flush()
		}
	}
	if progress {
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusOK)
		say()
	}
	for i, ref := range stores {
		for start := 0; start < len(users[i]); start += revokeBatch {
			batch := users[i][start:min(start+revokeBatch, len(users[i]))]
			now := ref.h.now()
			ended, err := session.EndUsers(ctx, ref.store, batch, now, session.EndRevoked, session.ActorAdmin, ref.h.policy)
			p.Revoked += len(adminEnded(ctx, ref, ended, now))
			if err != nil {
				if !progress {
					return storeError(err)
				}
				p.Error = "session store: " + err.Error()
				say()
				return nil
			}
			p.UsersDone += len(batch)
			say()
		}
	}
	if !progress {
		return writeJSON(w, http.StatusOK, map[string]int{"revoked": p.Revoked})
	}
	p.Done = true
	say()
	return nil
}
