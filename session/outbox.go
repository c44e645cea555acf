package session

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// Notice is one security notification waiting for delivery (SPEC section 7).
type Notice struct {
	Event      string    `json:"event"`
	At         time.Time `json:"at"`
	UserID     string    `json:"user_id"`
	SessionID  string    `json:"session_id"`
	DeviceName string    `json:"device_name"`
	Browser    string    `json:"browser"`
	OS         string    `json:"os"`
	IP         string    `json:"ip_address"`
	Country    string    `json:"country"`
	City       string    `json:"city"`
	RevokeURL  string    `json:"revoke_url"`

	// For a mail (SPEC section 14); not part of the webhook's body.
	Events      []string `json:"events,omitempty"` // every event the mail tells of
	Email       string   `json:"email,omitempty"`  // the recipient
	Name        string   `json:"name,omitempty"`
	SessionsURL string   `json:"sessions_url,omitempty"`
}

// Delivery is a notice taken from the outbox for one attempt.
type Delivery struct {
	ID      string // the outbox's id, for Ack and Retry
	Target  string // the receiver's URL
	Notice  Notice
	Attempt int // attempts made before this one
}

// outboxEntry is a delivery as the stores keep it.
type outboxEntry struct {
	Target  string `json:"target"`
	Notice  Notice `json:"notice"`
	Attempt int    `json:"attempt"`
}

func encodeEntry(target string, n Notice, attempt int) string {
	b, _ := json.Marshal(outboxEntry{Target: target, Notice: n, Attempt: attempt})
	return string(b)
}

func decodeEntry(id, s string) (Delivery, bool) {
	var e outboxEntry
	if json.Unmarshal([]byte(s), &e) != nil || e.Target == "" {
		return Delivery{}, false
	}
	return Delivery{ID: id, Target: e.Target, Notice: e.Notice, Attempt: e.Attempt}, true
}

// OutboxCap is how many undelivered notices an outbox holds (waiting,
// being delivered, or due for a retry). A notice past it is refused with
// ErrOutboxFull, for the caller to count and log: no notice already
// queued is ever dropped to make room. A variable so that tests can lower
// it; set it before any store is in use.
var OutboxCap = 10_000

// ErrOutboxFull: the outbox holds OutboxCap notices; the new one was not
// queued.
var ErrOutboxFull = errors.New("notification queue full: notice dropped")

// signal wakes a Claim waiting on queued, if one waits (queued has a
// buffer of one: a wake-up is never lost, never blocks).
func signal(queued chan struct{}) {
	select {
	case queued <- struct{}{}:
	default:
	}
}

// awaitOutbox waits, for an embedded store's Claim, until the outbox
// changes (queued), the next delivery falls due (next, when not 0), or the
// deadline passes, rather than polling.
func awaitOutbox(ctx context.Context, queued <-chan struct{}, deadline time.Time, next time.Duration) error {
	wait := time.Until(deadline)
	if next > 0 {
		wait = min(wait, next)
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-queued:
	case <-timer.C:
	}
	return nil
}
