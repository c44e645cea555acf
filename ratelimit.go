package sessionauth

import (
	"errors"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"go.uber.org/zap"

	"github.com/sessionauth/caddy-sessionauth/session"
)

// Rate limit kinds, as audit events name them in their reason.
const (
	limitLogin = "login" // sign-in attempts per client IP, and creations per user
	limitGuess = "guess" // unknown session tokens per client IP
)

// errRateLimited carries how long until the client may try again.
type errRateLimited struct{ retry time.Duration }

func (e errRateLimited) Error() string { return "rate limited" }

// blocklist remembers, in this process, which clients are over a limit
// until when, so that a flood from one address costs no store calls once
// it is over. The store keeps the count that all gateways share.
//
// A size-bounded LRU: when full, the client blocked least recently is
// forgotten (the store still counts it; only the shortcut is lost). Each
// entry has its own end, checked against the handler's clock, which is
// why this is not golang-lru's expirable LRU (one TTL for all, time.Now,
// and a goroutine that never ends; see graceCache).
type blocklist struct {
	until *lru.Cache[string, time.Time]
}

const maxBlocked = 100_000

func newBlocklist(size int) *blocklist {
	until, _ := lru.New[string, time.Time](size) // errors only for a size < 1
	return &blocklist{until: until}
}

func (b *blocklist) check(key string, now time.Time) (time.Duration, bool) {
	until, ok := b.until.Peek(key)
	if !ok {
		return 0, false
	}
	if !now.Before(until) {
		b.until.Remove(key)
		return 0, false
	}
	return until.Sub(now), true
}

func (b *blocklist) block(key string, until time.Time) {
	b.until.Add(key, until)
}

// clientKey is what an address is counted as: IPv4 as is, IPv6 by its
// /64, since one host can use a whole /64.
func clientKey(ip string) string {
	addr, err := netip.ParseAddr(ip)
	if err != nil || addr.Is4() {
		return ip
	}
	p, _ := addr.Prefix(64)
	return p.String()
}

// rateLimit counts one attempt of kind for who against rate. It answers
// errRateLimited when over the limit, and records the crossing once per
// window as an audit event.
func (h *Handler) rateLimit(r *http.Request, kind, who, userID string, rate *Rate) error {
	now := h.now()
	key := kind + ":" + who
	if retry, blocked := h.blocked.check(key, now); blocked {
		h.metrics.limited(kind)
		return errRateLimited{retry}
	}
	ctx := r.Context()
	n, left, err := h.store.Hit(ctx, key, time.Duration(rate.Window), now)
	if err != nil {
		return err
	}
	if n <= int64(rate.Count) {
		return nil
	}
	h.blocked.block(key, now.Add(left))
	h.metrics.limited(kind)
	if n == int64(rate.Count)+1 {
		e := session.Event{Type: session.EventRateLimited, At: now.UTC(), UserID: userID, IP: clientIP(r), Reason: kind}
		h.logEvent(e)
		if err := h.store.Record(ctx, e, h.policy); err != nil {
			h.logger.Error("recording a rate limit event", zap.Error(err))
		}
	}
	return errRateLimited{left}
}

// formNext is "?next=…" when the refused form carried a next the form
// can be shown again with (a sign-in's way back to where it was going),
// else "". The body is read within the sign-in form's limit; it is not
// forwarded after a refusal.
func formNext(w http.ResponseWriter, r *http.Request) string {
	// Only a form's body: a refused upload or API call is not read.
	if r.Body == nil || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		return ""
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxSignInForm)
	next := r.PostFormValue("next")
	if next == "" || safeNext(next) != next || next == "/" {
		return ""
	}
	return "?next=" + url.QueryEscape(next)
}

// tooMany answers 429 with Retry-After, and a browser a page with a way
// on: a GET tried again as it was, a form (a sign-in form, posted to its
// own page) shown again at its path.
func tooMany(w http.ResponseWriter, r *http.Request, err error) error {
	var rl errRateLimited
	errors.As(err, &rl)
	secs := int((rl.retry + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	uri := originalURI(r)
	way := &wayOn{safeNext(uri), "Try again"}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		path, _, _ := strings.Cut(uri, "?")
		way = &wayOn{safeNext(path) + formNext(w, r), "Back to the form"}
	}
	return answerWithWay(w, r, problemRateLimited, way)
}
