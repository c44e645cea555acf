package session

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Validate implements Store, in one round trip either way:
//
//   - Reading: most requests come within the touch interval of the last
//     one, from the same IP, and need nothing written. They are answered
//     from a plain HGETALL of the session and a ZSCORE of the user's index
//     (Redis spends about 3 µs on the pair, against 13 µs for the script,
//     most of it turning the hash into Lua strings and back).
//   - The script: when this process has not seen the session lately, or
//     last saw it from another IP or a touch interval ago, a write is
//     likely due, and validateScript checks and writes in one step.
//
// A read that finds a write due after all (the session expired, another
// gateway saw it last) runs the script too: a second round trip, rare.
//
// Both check that the user's index still lists the session, and the index
// is named after the user, which the session id does not tell: the owner
// of each user tag is remembered, and a check that does not know it yet
// learns it from the script's first answer (a second round trip, once per
// user and process).
func (r *Redis) Validate(ctx context.Context, id string, hash [32]byte, ip string, now time.Time, p Policy) (Validation, error) {
	tag := TagOfID(id)
	owner, known := r.owners.get(tag)
	if last, ok := r.recent.get(id); known && ok && last.ip == ip && now.Sub(last.active) < p.TouchInterval {
		v, settled, err := r.validateByReading(ctx, id, owner, hash, ip, now, p, last)
		if err != nil {
			return Validation{}, err
		}
		if settled {
			return v, nil
		}
	}
	return r.validateByScript(ctx, id, tag, owner, known, hash, ip, now, p)
}

// seen is what a validation in this process last saw of a session.
type seen struct {
	active time.Time
	ip     string
}

// validateByReading answers from the session's hash and its place in the
// user's index, read in one round trip, when that settles it; settled is
// false when a write is due (a touch, an expiry) or the owner changed.
// The two reads need not be one snapshot: the hash decides, and the
// index only ever loses a session that has ended or expired, which the
// hash shows too.
func (r *Redis) validateByReading(ctx context.Context, id, owner string, hash [32]byte, ip string, now time.Time, p Policy, last seen) (v Validation, settled bool, err error) {
	fields := redis.NewMapStringStringCmd(ctx, "hgetall", r.sessionKey(id))
	listed := redis.NewFloatCmd(ctx, "zscore", r.userKey(owner), id)
	if err := r.runReads(ctx, fields, listed); err != nil {
		return Validation{}, false, fmt.Errorf("validating session: %w", err)
	}
	m := fields.Val()
	if th := m["th"]; len(m) == 0 || subtle.ConstantTimeCompare([]byte(th), hash[:]) != 1 {
		return Validation{Status: Unknown}, true, nil
	}
	if m["u"] != owner {
		return Validation{}, false, nil // the script learns the new owner
	}
	s, err := decodeMap(id, m)
	if err != nil {
		return Validation{}, false, err
	}
	switch {
	case !s.EndedAt.IsZero():
		return Validation{Status: Ended, Session: s}, true, nil
	case errors.Is(listed.Err(), redis.Nil):
		return Validation{Status: Unlisted, Session: s}, true, nil
	case listed.Err() != nil:
		return Validation{}, false, fmt.Errorf("validating session: %w", listed.Err())
	case p.Expired(s, now) || p.TouchDue(s, now, ip):
		return Validation{}, false, nil
	}
	if !s.LastActiveAt.Equal(last.active) || s.IP != last.ip { // touched elsewhere
		r.recent.put(id, seen{s.LastActiveAt, s.IP})
	}
	return Validation{Status: Valid, Session: s}, true, nil
}

// runReads sends cmds in one round trip, waiting no longer than ctx
// allows (see runHot): on the pipeliner when there is one, where they
// usually share a batch with other requests' validations, else as a
// pipeline (a cluster: the keys share a slot). A missing key or member
// (redis.Nil) is left on its command.
func (r *Redis) runReads(ctx context.Context, cmds ...redis.Cmder) error {
	if r.hot == nil {
		_, err := r.client.Pipelined(ctx, func(pipe redis.Pipeliner) error {
			for _, c := range cmds {
				_ = pipe.Process(ctx, c)
			}
			return nil
		})
		if errors.Is(err, redis.Nil) {
			err = nil
		}
		return err
	}
	futures := make([]redis.AutoFuture, len(cmds))
	for i, c := range cmds {
		futures[i] = r.hot.Submit(ctx, c)
	}
	for _, f := range futures {
		if err := f.WaitContext(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
	}
	return nil
}

// validateByScript runs validateScript, which checks and, when due,
// touches or expires the session in one step.
func (r *Redis) validateByScript(ctx context.Context, id, tag, owner string, known bool, hash [32]byte, ip string, now time.Time, p Policy) (Validation, error) {
	lifetime, idle, retention := policyArgs(p)
	var res []any
	for try := 0; ; try++ {
		keys := []string{r.sessionKey(id)}
		if known {
			keys = append(keys, r.userKey(owner))
		}
		var err error
		res, err = r.runHot(ctx, validateScript, keys, string(hash[:]), ms(now), lifetime, idle,
			p.TouchInterval.Milliseconds(), ip, retention, r.tagPrefix(tag)+"u:", id)
		if err != nil {
			return Validation{}, fmt.Errorf("validating session: %w", err)
		}
		if code, _ := res[0].(int64); code != validateNeedsOwner || len(res) < 2 || try > 0 {
			break
		}
		owner, _ = res[1].(string)
		known = true
		r.owners.put(tag, owner)
	}
	code, _ := res[0].(int64)
	if code == validateUnknown || code == validateNeedsOwner || len(res) < 2 {
		return Validation{Status: Unknown}, nil
	}
	flat, _ := res[1].([]any)
	s, err := decode(id, flat)
	if err != nil {
		return Validation{}, err
	}
	switch code {
	case validateExpired:
		s.EndedAt, s.EndReason = p.ExpiresAt(s), EndExpired
		return Validation{Status: Expired, Session: s}, nil
	case validateEnded:
		return Validation{Status: Ended, Session: s}, nil
	case validateUnlisted:
		return Validation{Status: Unlisted, Session: s}, nil
	}
	v := Validation{Status: Valid, Session: s}
	if len(res) > 2 {
		if t, _ := res[2].(int64); t == 1 {
			v.Touched = true
			if s.IP != ip {
				v.PrevIP = s.IP
			}
			s.LastActiveAt, s.IP = msTime(now), ip
		}
	}
	if len(res) > 3 {
		// Redis is full (maxmemory, noeviction) and refused the touch. A
		// new IP must be recorded before the session is served from it
		// (policies, events, notices): that request fails like any the
		// store cannot serve.
		if s.IP != ip {
			return Validation{}, fmt.Errorf("validating session: recording a new IP: %w", ErrStoreFull)
		}
		v.TouchRefused = true
		return v, nil // not touched: the next request tries again
	}
	r.recent.put(id, seen{s.LastActiveAt, s.IP})
	return v, nil
}

// memo is a bounded map of what this process learnt from Redis, to save
// round trips; it is never the authority. When full it is emptied, and
// each entry costs one round trip more to be learnt again.
type memo[V any] struct {
	mu sync.RWMutex
	m  map[string]V
}

// maxMemo bounds each memo (about 100 bytes an entry).
const maxMemo = 1 << 17

func (o *memo[V]) get(key string) (V, bool) {
	o.mu.RLock()
	defer o.mu.RUnlock()
	v, ok := o.m[key]
	return v, ok
}

func (o *memo[V]) put(key string, v V) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.m == nil || len(o.m) >= maxMemo {
		o.m = make(map[string]V)
	}
	o.m[key] = v
}
