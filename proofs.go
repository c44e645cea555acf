package sessionauth

import (
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/sessionauth/caddy-sessionauth/session"
)

// limitCode is the rate_limited reason of an account whose second factor
// was guessed at too often (SPEC 11).
const limitCode = "code"

// proofLimit bounds the wrong second-factor proofs of one account from
// all addresses together (a /48 or a botnet has as many addresses as it
// likes), counted in the store so that every gateway shares the count.
// TOTP codes use codeLimit; recovery codes and passkey assertions are
// to count under it too.
type proofLimit struct {
	reason string // the rate_limited event's reason
	count  int64
	window time.Duration
}

var codeLimit = proofLimit{reason: limitCode, count: 10, window: 15 * time.Minute}

// spendProof counts one proof for userID before it is checked, so that
// guesses sent at once cannot all pass a check made before any of them
// was counted, and answers errRateLimited past the limit: then the
// account's proofs are refused everywhere until the window ends, and the
// first refusal records rate_limited. The caller calls settle with
// whether the proof was right: a right one is given back (Refund), so
// only wrong ones count.
func (h *Handler) spendProof(r *http.Request, l proofLimit, userID string) (settle func(right bool), err error) {
	now := h.now()
	key := "proof:" + l.reason + ":" + userID
	if retry, blocked := h.blocked.check(key, now); blocked {
		h.metrics.limited(l.reason)
		return nil, errRateLimited{retry}
	}
	ctx := r.Context()
	n, left, err := h.store.Hit(ctx, key, l.window, now)
	if err != nil {
		return nil, err
	}
	if n > l.count {
		h.blocked.block(key, now.Add(left))
		h.metrics.limited(l.reason)
		if n == l.count+1 {
			e := session.Event{Type: session.EventRateLimited, At: now.UTC(), UserID: userID, IP: clientIP(r), Reason: l.reason}
			h.logEvent(e)
			if err := h.store.Record(ctx, e, h.policy); err != nil {
				h.logger.Error("recording a rate limit event", zap.Error(err))
			}
		}
		return nil, errRateLimited{left}
	}
	return func(right bool) {
		if !right {
			return
		}
		ctx := r.Context()
		if err := h.store.Refund(ctx, key, h.now()); err != nil {
			h.logger.Error("giving back a right proof's count", zap.Error(err))
		}
	}, nil
}
