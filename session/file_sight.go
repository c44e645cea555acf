package session

import (
	"context"
	"errors"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Sightings. The first request of a session from a new IP records where
// the session is now, the user's history and the events: the answer is
// decided from what the file holds, and the write goes behind, in the
// next group commit, like a touch, so that a whole office changing its
// address does not cost an fsync per session. (ip_change deny does not
// sight: it ends the session, a write that is answered only once on
// disk.) A crash loses at most the sightings of the commit in progress.
//
// A sighting is decided from the user's history, so a second one of the
// same user waits for the first: while a sighting of a user is not yet
// committed, the next one of that user is written at once, after it.
type fileSights struct {
	mu    sync.Mutex
	users map[string]int         // sightings not yet committed, by user
	seen  map[string]*sightPlace // where each session was sighted last, until committed
}

// sightPlace is what a sighting changes on the session's record.
type sightPlace struct {
	sg     Sighting
	raised bool // impossible travel
}

// Sight implements Store.
func (f *File) Sight(_ context.Context, id string, sg Sighting, at time.Time, p Policy) (*Session, error) {
	at = msTime(at)
	if err := f.ready(); err != nil {
		return nil, err
	}
	s := &f.sights
	s.mu.Lock()
	var r *fileRecord
	var fh *fileHistory
	err := f.readView(func(tx *bolt.Tx) error {
		if r = liveRecord(tx, id, at); r != nil {
			fh = getHistory(tx, r.UserID, at, p)
		}
		return nil
	})
	if err != nil || r == nil {
		s.mu.Unlock()
		if err == nil {
			err = ErrNotFound
		}
		return nil, err
	}
	user := r.UserID
	if s.users == nil {
		s.users, s.seen = make(map[string]int), make(map[string]*sightPlace)
	}
	s.users[user]++
	if s.users[user] > 1 || f.moved.Load() != nil {
		s.mu.Unlock()
		defer f.sighted(user, "", nil)
		return f.sightNow(id, sg, at, p) // after the user's sighting that waits, or refused
	}
	f.pmu.Lock()
	if t, ok := f.pending[id]; ok && !t.at.Before(r.LastActiveAt) {
		r.LastActiveAt, r.IP, r.PurgeAt = t.at, t.ip, t.purgeAt
	}
	f.pmu.Unlock()
	if !r.Active() || p.Expired(&r.Session, at) {
		s.mu.Unlock()
		f.sighted(user, "", nil)
		return nil, ErrNotFound
	}
	h := fh.history()
	prevCountry := r.Country
	place := &sightPlace{sg: sg, raised: sightRecord(r, h, sg, at, p)}
	decided := r.Session.Clone()
	write := func(tx *bolt.Tx) error { return writeSightBehind(tx, id, decided, prevCountry, place, at, p) }
	if !f.writeBehind("sighting", write, func() { f.sighted(user, id, place) }) {
		s.mu.Unlock()
		defer f.sighted(user, "", nil)
		return f.sightNow(id, sg, at, p) // the writers in flight are at their bound
	}
	s.seen[id] = place
	s.mu.Unlock()
	return decided.Clone(), nil
}

// sighted forgets a sighting of user once it is committed (or failed):
// id's place, when it is still place.
func (f *File) sighted(user, id string, place *sightPlace) {
	s := &f.sights
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.users[user]--; s.users[user] <= 0 {
		delete(s.users, user)
	}
	if id != "" && s.seen[id] == place {
		delete(s.seen, id)
	}
}

// sightedBehind gives r the place of its sighting not yet committed, for
// Validate, which reads the file.
func (f *File) sightedBehind(id string, r *fileRecord) {
	s := &f.sights
	s.mu.Lock()
	place := s.seen[id]
	s.mu.Unlock()
	if place != nil {
		placeRecord(r, place.sg)
		if place.raised {
			r.Risk = AddFlag(r.Risk, FlagImpossibleTravel)
		}
	}
}

// settleBehind commits the writes behind still queued, for a read that
// must see their events.
func (f *File) settleBehind() error {
	f.group.mu.Lock()
	behind := f.group.behind
	f.group.mu.Unlock()
	if behind == 0 {
		return nil
	}
	return f.update(nil)
}

// sightRecord decides a sighting: it moves r to sg, raises impossible
// travel on it when the user's last known place was too far too lately,
// and remembers sg in the user's history h. It reports whether the flag
// was raised.
func sightRecord(r *fileRecord, h *history, sg Sighting, at time.Time, p Policy) bool {
	raised := false
	if sg.HasCoord && h.lastLoc != nil && !h.lastLoc.at.Before(at.Add(-p.Retention)) &&
		!HasFlag(r.Risk, FlagImpossibleTravel) &&
		ImpossibleTravel(h.lastLoc.lat, h.lastLoc.lon, h.lastLoc.at, sg.Lat, sg.Lon, at) {
		r.Risk = AddFlag(r.Risk, FlagImpossibleTravel)
		raised = true
	}
	h.remember("", sg, at)
	r.IP = sg.IP
	placeRecord(r, sg)
	return raised
}

// placeRecord sets where r is, from sg; an unlocated sighting keeps no
// old location.
func placeRecord(r *fileRecord, sg Sighting) {
	r.Country, r.City = sg.Country, sg.City
	r.Lat, r.Lon, r.HasCoord = sg.Lat, sg.Lon, sg.HasCoord
	if !sg.HasCoord {
		r.Lat, r.Lon = 0, 0
	}
}

// sightEvents writes a sighting's events: the change of IP, of country,
// and the risk it raised.
func sightEvents(tx *bolt.Tx, s *Session, prevCountry string, raised bool, at time.Time, p Policy) error {
	err := addEvent(tx, s.UserID, eventFor(s, EventIPChange, at), p)
	if s.Country != "" && prevCountry != "" && s.Country != prevCountry {
		err = errors.Join(err, addEvent(tx, s.UserID, eventFor(s, EventCountryChange, at), p))
	}
	if raised {
		for _, e := range RiskEvents(s, FlagImpossibleTravel, at) {
			err = errors.Join(err, addEvent(tx, s.UserID, e, p))
		}
	}
	return err
}

// sightNow decides and writes a sighting in one transaction, answered
// once it is on disk.
func (f *File) sightNow(id string, sg Sighting, at time.Time, p Policy) (*Session, error) {
	var out *Session
	err := f.update(func(tx *bolt.Tx) error {
		r := liveRecord(tx, id, at)
		if r == nil || !r.Active() || p.Expired(&r.Session, at) {
			return ErrNotFound
		}
		prevCountry, prevIP := r.Country, r.IP
		fh := getHistory(tx, r.UserID, at, p)
		h := fh.history()
		raised := sightRecord(r, h, sg, at, p)
		out = r.Session.Clone()
		return errors.Join(moveIP(tx, id, prevIP, r.IP), putHistory(tx, r.UserID, fh, h), putRecord(tx, r),
			sightEvents(tx, &r.Session, prevCountry, raised, at, p))
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// writeSightBehind writes a sighting decided earlier: what was answered
// (decided) goes to the file as it was answered. The session's record
// moves unless it has ended meanwhile, or a later request has moved it
// already; the history and the events are written either way, since the
// request they tell of was served.
func writeSightBehind(tx *bolt.Tx, id string, decided *Session, prevCountry string, place *sightPlace, at time.Time, p Policy) error {
	var errs []error
	if r := liveRecord(tx, id, at); r != nil && r.Active() && !r.LastActiveAt.After(at) {
		errs = append(errs, moveIP(tx, id, r.IP, place.sg.IP))
		r.IP = place.sg.IP
		placeRecord(r, place.sg)
		if place.raised {
			r.Risk = AddFlag(r.Risk, FlagImpossibleTravel)
		}
		errs = append(errs, putRecord(tx, r))
	}
	fh := getHistory(tx, decided.UserID, at, p)
	h := fh.history()
	h.remember("", place.sg, at)
	errs = append(errs, putHistory(tx, decided.UserID, fh, h),
		sightEvents(tx, decided, prevCountry, place.raised, at, p))
	return errors.Join(errs...)
}
