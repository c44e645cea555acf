package session

import (
	"cmp"
	"slices"
	"time"
)

// maxEventsPerUser caps a user's audit trail in the file store (the
// Redis store caps it in its scripts).
const maxEventsPerUser = 1000

// sortForLimit orders sessions so that the ones to end come first. Lua
// twin: the sort in createScript (redis_scripts.go).
func sortForLimit[T any](xs []T, mode LimitMode, get func(T) *Session) {
	slices.SortFunc(xs, func(a, b T) int {
		sa, sb := get(a), get(b)
		if mode == LimitLeastRecent {
			if c := sa.LastActiveAt.Compare(sb.LastActiveAt); c != 0 {
				return c
			}
		}
		if c := sa.CreatedAt.Compare(sb.CreatedAt); c != 0 {
			return c
		}
		return cmp.Compare(sa.ID, sb.ID)
	})
}

// msTime keeps the precision Redis keeps, so both stores answer alike.
func msTime(t time.Time) time.Time { return t.Truncate(time.Millisecond).UTC() }

// SortByActivity orders sessions newest activity first, as lists show them.
func SortByActivity(xs []*Session) {
	slices.SortFunc(xs, func(a, b *Session) int {
		if c := b.LastActiveAt.Compare(a.LastActiveAt); c != 0 {
			return c
		}
		return cmp.Compare(b.ID, a.ID)
	})
}
