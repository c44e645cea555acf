package session

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"sync"
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
	Passkey     string   `json:"passkey,omitempty"`   // a passkey's mail: its name
	ResetURL    string   `json:"reset_url,omitempty"` // the forgot-password mail's link (SPEC 15)

	// Trace is the W3C traceparent of the request that queued the notice,
	// for the delivery's span; never sent to a receiver.
	Trace string `json:"trace,omitempty"`
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

// OutboxCap is how many undelivered notices one channel of an outbox
// (one target) holds: waiting, being delivered, or due for a retry. A
// notice past it is refused with ErrOutboxFull, for the caller to count
// and log: no notice already queued is ever dropped to make room, and a
// full channel refuses nothing to the others. A variable so that tests
// can lower it; set it before any store is in use.
var OutboxCap = 10_000

// ErrOutboxFull: the target's channel holds OutboxCap notices; the new
// one was not queued.
var ErrOutboxFull = errors.New("notification queue full: notice dropped")

// channelID names target's channel in a store: 8 bytes of its SHA-256,
// the same for every gateway and across restarts.
func channelID(target string) []byte {
	sum := sha256.Sum256([]byte(target))
	return sum[:8]
}

// wakers holds one wake-up per channel, for the embedded stores' Claim.
type wakers struct {
	mu sync.Mutex
	m  map[string]chan struct{}
}

// of is target's wake-up channel.
func (w *wakers) of(target string) chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.m == nil {
		w.m = make(map[string]chan struct{})
	}
	c := w.m[target]
	if c == nil {
		c = make(chan struct{}, 1)
		w.m[target] = c
	}
	return c
}

// wake tells a Claim waiting on target's channel that it changed.
func (w *wakers) wake(target string) { signal(w.of(target)) }

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
