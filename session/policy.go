package session

import "time"

// Policy is the time rule a handler applies to its sessions. Handlers that
// share a store may differ, so every store call takes the policy with it.
type Policy struct {
	Lifetime      time.Duration // absolute, from creation
	IdleTimeout   time.Duration // since last activity; 0 = none
	TouchInterval time.Duration // at most one activity write per interval
	Retention     time.Duration // ended sessions kept for audit
}

// ExpiresAt is the moment the session stops being valid if nothing
// touches it again. An API token has its own lifetime and no idle timeout.
// Lua twin: expires_at in luaPrelude (redis_scripts.go).
func (p Policy) ExpiresAt(s *Session) time.Time {
	if s.IsToken() && s.TokenLifetime > 0 {
		return s.CreatedAt.Add(s.TokenLifetime)
	}
	exp := s.CreatedAt.Add(p.Lifetime)
	if p.IdleTimeout > 0 {
		if idle := s.LastActiveAt.Add(p.IdleTimeout); idle.Before(exp) {
			exp = idle
		}
	}
	return exp
}

// Expired reports whether an active session has run out of time at now.
func (p Policy) Expired(s *Session, now time.Time) bool {
	return !now.Before(p.ExpiresAt(s))
}

// TouchDue reports whether a request at now from ip must write activity.
// A token's first use is always due, so that its "last used" is never
// "never" once it has been used. Lua twin: validateScript (redis_scripts.go).
func (p Policy) TouchDue(s *Session, now time.Time, ip string) bool {
	return ip != s.IP || now.Sub(s.LastActiveAt) >= p.TouchInterval ||
		(s.IsToken() && !s.LastActiveAt.After(s.CreatedAt))
}

// PurgeAt is when the store may forget the record: retention after it
// ended, or after it would expire.
func (p Policy) PurgeAt(s *Session) time.Time {
	if !s.EndedAt.IsZero() {
		return s.EndedAt.Add(p.Retention)
	}
	return p.ExpiresAt(s).Add(p.Retention)
}

// View returns the session as lists show it: an active session that has
// run out of time shows as ended with reason "expired" at its expiry.
func (p Policy) View(s *Session, now time.Time) *Session {
	c := s.Clone()
	if c.Active() && p.Expired(c, now) {
		c.EndedAt = p.ExpiresAt(c)
		c.EndReason = EndExpired
	}
	return c
}
