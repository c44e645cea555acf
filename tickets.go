package sessionauth

import (
	"context"
	"encoding/json"
	"time"

	"github.com/sessionauth/caddy-sessionauth/session"
)

// takeTicket takes the single-use record of a token (an invitation, a
// password-reset link) from st under key, the token's hash: spent unless
// put back; ErrNotFound when there is none, it is unreadable or it has
// expired. A token longer than any we make is not looked up.
func takeTicket(ctx context.Context, st session.Store, token, key string, now time.Time) (invitation, error) {
	var t invitation
	if token == "" || len(token) > 128 {
		return t, session.ErrNotFound
	}
	v, err := st.Take(ctx, key, now)
	if err != nil {
		return t, err
	}
	if json.Unmarshal(v, &t) != nil || t.User == "" || !now.Before(t.Expires) {
		return t, session.ErrNotFound
	}
	return t, nil
}

// putTicketBack stashes a taken record again, until it expires (a GET
// that only shows the page, a form refused before it was spent).
func putTicketBack(ctx context.Context, st session.Store, key string, t invitation, now time.Time) error {
	v, _ := json.Marshal(t)
	return st.Stash(ctx, key, v, max(t.Expires.Sub(now), time.Second), now)
}
