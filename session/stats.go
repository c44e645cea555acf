package session

import (
	"cmp"
	"context"
	"slices"
	"time"
)

// Statistics is what the admin console draws (SPEC 17): counters the
// store keeps of sign-ins, failed sign-ins and revocations, written in the
// same operation as the event each counts (no extra write, no extra round
// trip), and the latest risk events and failed sign-ins. Every gateway on
// one store reads the same figures.
type Statistics interface {
	// Stats reads the counters as of now: the last StatsHours hourly and
	// StatsDays daily buckets (oldest first), the active sessions now by
	// country, device type and browser (under p), and the latest
	// risk and login_failed events, newest first.
	Stats(ctx context.Context, now time.Time, p Policy) (*Stats, error)
}

// The counters' bounds: a bucket older than these is overwritten (Redis)
// or swept (file), so that what the store keeps never grows.
const (
	StatsHours = 48
	StatsDays  = 90
	// maxRecentEvents caps the latest risk events and failed sign-ins kept.
	maxRecentEvents = 50
	// maxStatsWalk caps the live sessions one Stats reads for the
	// breakdowns by country, device type and browser: beyond it the
	// figures are of the first maxStatsWalk found (Stats.Partial), so that
	// a page view costs at most that much whatever the store holds.
	maxStatsWalk = 100_000
)

// Stats are the figures of Statistics.Stats.
type Stats struct {
	ActiveSessions int
	Hourly, Daily  []StatsBucket // oldest first
	ByCountry      map[string]int
	ByDeviceType   map[string]int
	ByBrowser      map[string]int
	Recent         []Event // risk and login_failed, newest first
	// Partial: more live sessions than maxStatsWalk; the active count and
	// the breakdowns are of those read.
	Partial bool
}

// StatsBucket is one hour's or day's counts; At is its start (UTC).
type StatsBucket struct {
	At            time.Time
	SignIns       int64
	FailedSignIns int64
	Revocations   int64
}

// What the counters count: a sign-in is a new session (an API token is
// not one; a sign-in that Discard undoes, its reply lost, stays counted),
// a failed sign-in a login_failed event, a revocation a revoke event (a
// session ended by anyone but its user signing out; expiry is not one).
const (
	statSignIn = 'i'
	statFailed = 'f'
	statRevoke = 'r'
)

// statKind is what an event counts as, or 0.
func statKind(e *Event) byte {
	switch e.Type {
	case EventLoginFailed:
		return statFailed
	case EventRevoke:
		return statRevoke
	}
	return 0
}

// recentKind: the events the console lists as they come.
func recentKind(e *Event) bool { return e.Type == EventRisk || e.Type == EventLoginFailed }

const (
	hourMS = int64(time.Hour / time.Millisecond)
	dayMS  = 24 * hourMS
)

// emptyBuckets are the n buckets of width ms (in milliseconds) that end
// with the one holding now, oldest first.
func emptyBuckets(now time.Time, width int64, n int) []StatsBucket {
	last := now.UnixMilli() / width
	out := make([]StatsBucket, n)
	for i := range out {
		out[i].At = time.UnixMilli((last - int64(n-1-i)) * width).UTC()
	}
	return out
}

// addTo adds counts of the bucket numbered idx (Unix ms / width) to
// whichever of bs it is, if any.
func addTo(bs []StatsBucket, width, idx int64, kind byte, n int64) {
	if len(bs) == 0 {
		return
	}
	i := idx - bs[0].At.UnixMilli()/width
	if i < 0 || i >= int64(len(bs)) {
		return
	}
	switch kind {
	case statSignIn:
		bs[i].SignIns += n
	case statFailed:
		bs[i].FailedSignIns += n
	case statRevoke:
		bs[i].Revocations += n
	}
}

// newStats is an empty Stats as of now.
func newStats(now time.Time) *Stats {
	return &Stats{
		Hourly:    emptyBuckets(now, hourMS, StatsHours),
		Daily:     emptyBuckets(now, dayMS, StatsDays),
		ByCountry: map[string]int{}, ByDeviceType: map[string]int{}, ByBrowser: map[string]int{},
	}
}

// countLive adds an active session to the breakdowns; false once the walk
// reached its cap.
func (st *Stats) countLive(s *Session, now time.Time, p Policy) bool {
	if !s.Active() || p.Expired(s, now) || s.IsToken() {
		return true
	}
	if st.ActiveSessions >= maxStatsWalk {
		st.Partial = true
		return false
	}
	st.ActiveSessions++
	st.ByCountry[orUnknown(s.Country)]++
	st.ByDeviceType[orUnknown(s.DeviceType)]++
	st.ByBrowser[orUnknown(s.Browser)]++
	return true
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// keepRecent sorts the latest events newest first and keeps the cap.
func (st *Stats) keepRecent() {
	slices.SortStableFunc(st.Recent, func(a, b Event) int { return cmp.Compare(b.At.UnixNano(), a.At.UnixNano()) })
	if len(st.Recent) > maxRecentEvents {
		st.Recent = st.Recent[:maxRecentEvents]
	}
}
