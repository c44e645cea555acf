package session

import (
	"cmp"
	"slices"
	"time"
)

// maxEndedPerUser caps the ended sessions a user keeps (SPEC section 10):
// the newest are kept for retention, older ones are dropped (their audit
// events stay), so that no operation's cost grows with how often the user
// signed in.
const maxEndedPerUser = 50

// pastCap returns the sessions of one user that the cap drops at now: of
// those no longer active (ended, or out of time under p), all but the
// newest maxEndedPerUser by when they ended. The Redis scripts apply the
// same rule (cap_ended).
func pastCap(ss []*Session, now time.Time, p Policy) []*Session {
	type entry struct {
		s  *Session
		at time.Time
	}
	var ended []entry
	for _, s := range ss {
		switch {
		case !s.Active():
			ended = append(ended, entry{s, s.EndedAt})
		case p.Expired(s, now):
			ended = append(ended, entry{s, p.ExpiresAt(s)})
		}
	}
	if len(ended) <= maxEndedPerUser {
		return nil
	}
	slices.SortFunc(ended, func(a, b entry) int {
		if c := b.at.Compare(a.at); c != 0 {
			return c
		}
		return cmp.Compare(b.s.ID, a.s.ID)
	})
	out := make([]*Session, 0, len(ended)-maxEndedPerUser)
	for _, e := range ended[maxEndedPerUser:] {
		out = append(out, e.s)
	}
	return out
}
