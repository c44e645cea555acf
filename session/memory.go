package session

import (
	"cmp"
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// maxEventsPerUser caps a user's audit trail in both stores.
const maxEventsPerUser = 1000

// Memory is the embedded store: sessions in this process only, for a
// single gateway instance. It is safe for concurrent use, and a caddy
// reload keeps it (it lives in a caddy.UsagePool).
type Memory struct {
	now    func() time.Time
	tagKey []byte // the key of user tags; the sessions die with it

	mu       sync.RWMutex
	sessions map[string]*memRecord
	users    map[string]map[string]struct{} // user id -> session ids
	events   map[string][]memEvent          // user id -> oldest first
	hist     map[string]*memHistory         // user id -> risk history
	counters map[string]*memCounter         // rate limit windows
	stashed  map[string]memStash            // one-use records (Stash, Take)
	links    map[string]linkSet             // Link, Linked
	global   []memEvent                     // events without a user, capped
	outbox   map[string]*memChannel         // by target
	nextID   int64
	queued   wakers // a send wakes a Claim waiting on its channel

	stop chan struct{}
	once sync.Once
}

type memRecord struct {
	s       Session
	purgeAt time.Time
	endedBy string // the sign-in whose limit ended it
}

type memHistory struct {
	history
	purgeAt time.Time
}

// historyOf returns the user's risk history, empty when past retention.
func (m *Memory) historyOf(user string, now time.Time, p Policy) *memHistory {
	h := m.hist[user]
	if h == nil || !now.Before(h.purgeAt) {
		h = &memHistory{history: history{devices: map[string]time.Time{}, countries: map[string]time.Time{}}}
		m.hist[user] = h
	}
	h.purgeAt = now.Add(p.Retention)
	return h
}

type memCounter struct {
	n   int64
	end time.Time
}

// ByIP implements Store: one instance's sessions are few enough to scan.
// Newest activity first (see PageByActivity).
func (m *Memory) ByIP(_ context.Context, ip string, now time.Time, p Policy, after string, limit int) ([]*Session, string, error) {
	m.mu.RLock()
	var out []*Session
	for id := range m.sessions {
		if r := m.live(id, now); r != nil && r.s.IP == ip && r.s.Active() && !p.Expired(&r.s, now) {
			out = append(out, r.s.Clone())
		}
	}
	m.mu.RUnlock()
	SortByActivity(out)
	return PageByActivity(out, after, limit)
}

// Users implements Store.
func (m *Memory) Users(context.Context) ([]string, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]string, 0, len(m.users))
	for u := range m.users {
		out = append(out, u)
	}
	slices.Sort(out)
	return out, nil
}

// Hit implements Store.
func (m *Memory) Hit(_ context.Context, key string, window time.Duration, now time.Time) (int64, time.Duration, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.counters[key]
	if c == nil || !now.Before(c.end) {
		c = &memCounter{end: now.Add(window)}
		m.counters[key] = c
	}
	c.n++
	return c.n, c.end.Sub(now), nil
}

// Refund implements Store.
func (m *Memory) Refund(_ context.Context, key string, now time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c := m.counters[key]; c != nil && now.Before(c.end) && c.n > 0 {
		c.n--
	}
	return nil
}

type memStash struct {
	value []byte
	until time.Time
}

// Stash implements Store.
func (m *Memory) Stash(_ context.Context, key string, value []byte, ttl time.Duration, now time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stashed[key] = memStash{value: slices.Clone(value), until: now.Add(ttl)}
	return nil
}

// Take implements Store.
func (m *Memory) Take(_ context.Context, key string, now time.Time) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	st, ok := m.stashed[key]
	delete(m.stashed, key)
	if !ok || !now.Before(st.until) {
		return nil, ErrNotFound
	}
	return st.value, nil
}

// Link implements Store.
func (m *Memory) Link(_ context.Context, key, member string, ttl time.Duration, now time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	l := m.links[key]
	if l == nil {
		l = linkSet{}
		m.links[key] = l
	}
	l.add(member, now.Add(ttl), now)
	return nil
}

// Linked implements Store.
func (m *Memory) Linked(_ context.Context, key string, now time.Time) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.links[key].members(now), nil
}

// Record implements Store.
func (m *Memory) Record(_ context.Context, e Event, p Policy) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e.UserID != "" {
		m.addEvent(e, p)
		return nil
	}
	m.global = append(m.global, memEvent{e: e, purgeAt: e.At.Add(p.Retention)})
	if len(m.global) > maxEventsPerUser {
		m.global = slices.Clone(m.global[len(m.global)-maxEventsPerUser:])
	}
	return nil
}

type memDelivery struct {
	Delivery
	due time.Time
}

// memChannel is one target's part of the outbox, bounded (OutboxCap).
type memChannel struct {
	waiting  []memDelivery
	inflight map[string]memDelivery // claimed, not yet acked
}

// channel is target's part of the outbox; m.mu is held.
func (m *Memory) channel(target string) *memChannel {
	ch := m.outbox[target]
	if ch == nil {
		ch = &memChannel{inflight: make(map[string]memDelivery)}
		m.outbox[target] = ch
	}
	return ch
}

// Enqueue implements Store. Each channel is bounded (OutboxCap): when
// full, the new notice is refused and the caller told, to count and log it.
func (m *Memory) Enqueue(_ context.Context, target string, n Notice) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	ch := m.channel(target)
	if len(ch.waiting)+len(ch.inflight) >= OutboxCap {
		return ErrOutboxFull
	}
	m.nextID++
	d := memDelivery{Delivery: Delivery{ID: strconv.FormatInt(m.nextID, 10), Target: target, Notice: n}, due: m.now()}
	ch.waiting = append(ch.waiting, d)
	m.queued.wake(target)
	return nil
}

// Claim implements Store.
func (m *Memory) Claim(ctx context.Context, _, target string, max int, block time.Duration) ([]Delivery, error) {
	deadline := time.Now().Add(block)
	for {
		m.mu.Lock()
		now := m.now()
		ch := m.channel(target)
		var out []Delivery
		var next time.Duration // until the earliest delivery not yet due, if any
		kept := ch.waiting[:0]
		for _, d := range ch.waiting {
			if len(out) < max && !d.due.After(now) {
				out = append(out, d.Delivery)
				ch.inflight[d.ID] = d
				continue
			}
			kept = append(kept, d)
			if wait := d.due.Sub(now); wait > 0 && (next == 0 || wait < next) {
				next = wait
			}
		}
		ch.waiting = kept
		m.mu.Unlock()
		if len(out) > 0 || !time.Now().Before(deadline) {
			return out, nil
		}
		if err := awaitOutbox(ctx, m.queued.of(target), deadline, next); err != nil {
			return nil, err
		}
	}
}

// Ack implements Store.
func (m *Memory) Ack(_ context.Context, d Delivery) error {
	m.mu.Lock()
	delete(m.channel(d.Target).inflight, d.ID)
	m.mu.Unlock()
	return nil
}

// Retry implements Store.
func (m *Memory) Retry(_ context.Context, d Delivery, at time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	ch := m.channel(d.Target)
	delete(ch.inflight, d.ID)
	d.Attempt++
	ch.waiting = append(ch.waiting, memDelivery{Delivery: d, due: at})
	m.queued.wake(d.Target)
	return nil
}

// Targets implements Store.
func (m *Memory) Targets(context.Context) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for target, ch := range m.outbox {
		if len(ch.waiting)+len(ch.inflight) > 0 {
			out = append(out, target)
		}
	}
	slices.Sort(out)
	return out, nil
}

type memEvent struct {
	e       Event
	purgeAt time.Time
}

// NewMemory returns an empty memory store. now is its clock (time.Now
// when nil); sweep is how often expired records are dropped (0: never,
// for tests that sweep by hand with Sweep).
func NewMemory(now func() time.Time, sweep time.Duration) *Memory {
	if now == nil {
		now = time.Now
	}
	m := &Memory{
		now:      now,
		sessions: make(map[string]*memRecord),
		users:    make(map[string]map[string]struct{}),
		events:   make(map[string][]memEvent),
		hist:     make(map[string]*memHistory),
		counters: make(map[string]*memCounter),
		stashed:  make(map[string]memStash),
		links:    make(map[string]linkSet),
		outbox:   make(map[string]*memChannel),
		stop:     make(chan struct{}),
	}
	key, err := newTagKey()
	if err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	m.tagKey = key
	if sweep > 0 {
		go m.sweepEvery(sweep)
	}
	return m
}

// NewCredential implements Store.
func (m *Memory) NewCredential(_ context.Context, userID string) (string, string, [32]byte, error) {
	return NewCredentialTagged(UserTagFor(m.tagKey, userID))
}

func (m *Memory) sweepEvery(d time.Duration) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			m.Sweep()
		case <-m.stop:
			return
		}
	}
}

// Sweep drops sessions and events past their retention, as Redis TTLs do.
func (m *Memory) Sweep() {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, r := range m.sessions {
		if !now.Before(r.purgeAt) {
			m.forget(id, r.s.UserID)
		}
	}
	for k, c := range m.counters {
		if !now.Before(c.end) {
			delete(m.counters, k)
		}
	}
	for k, st := range m.stashed {
		if !now.Before(st.until) {
			delete(m.stashed, k)
		}
	}
	for k, l := range m.links {
		if l.prune(now); len(l) == 0 {
			delete(m.links, k)
		}
	}
	for u, h := range m.hist {
		if !now.Before(h.purgeAt) {
			delete(m.hist, u)
		}
	}
	for u, evs := range m.events {
		i := 0
		for i < len(evs) && !now.Before(evs[i].purgeAt) {
			i++
		}
		if i == len(evs) {
			delete(m.events, u)
		} else if i > 0 {
			m.events[u] = slices.Clone(evs[i:])
		}
	}
}

func (m *Memory) forget(id, user string) {
	delete(m.sessions, id)
	if ids := m.users[user]; ids != nil {
		delete(ids, id)
		if len(ids) == 0 {
			delete(m.users, user)
		}
	}
}

// live returns the record unless it is past its purge time.
func (m *Memory) live(id string, now time.Time) *memRecord {
	r := m.sessions[id]
	if r == nil || !now.Before(r.purgeAt) {
		return nil
	}
	return r
}

// addEvent appends to the user's trail. The trail is trimmed to its
// newest maxEventsPerUser once it holds twice that (Events reads no
// further), so that each event costs the copy of one, not of the trail.
func (m *Memory) addEvent(e Event, p Policy) {
	evs := append(m.events[e.UserID], memEvent{e: e, purgeAt: e.At.Add(p.Retention)})
	if len(evs) > 2*maxEventsPerUser {
		evs = slices.Clone(evs[len(evs)-maxEventsPerUser:])
	}
	m.events[e.UserID] = evs
}

// capEnded drops the user's ended sessions past the cap (see pastCap);
// their events stay.
func (m *Memory) capEnded(user string, now time.Time, p Policy) {
	var ss []*Session
	for id := range m.users[user] {
		if r := m.live(id, now); r != nil {
			ss = append(ss, &r.s)
		}
	}
	for _, s := range pastCap(ss, now, p) {
		m.forget(s.ID, user)
	}
}

func (m *Memory) end(r *memRecord, at time.Time, reason, actor string, p Policy) *Session {
	r.s.EndedAt, r.s.EndReason = at, reason
	r.purgeAt = p.PurgeAt(&r.s)
	m.addEvent(EndEvent(&r.s, at, reason, actor), p)
	return r.s.Clone()
}

// Create implements Store.
func (m *Memory) Create(_ context.Context, s *Session, p Policy, lim Limit) ([]*Session, error) {
	now := msTime(s.CreatedAt)
	m.mu.Lock()
	defer m.mu.Unlock()

	var active []*memRecord
	var newest time.Time
	tokens := 0
	for id := range m.users[s.UserID] {
		r := m.live(id, now)
		if r == nil {
			continue
		}
		if r.s.CreatedAt.After(newest) {
			newest = r.s.CreatedAt
		}
		// API tokens are not signed-in devices: they neither count
		// towards max_sessions nor give way to it.
		if r.s.Active() && !p.Expired(&r.s, now) {
			if r.s.IsToken() {
				tokens++
			} else {
				active = append(active, r)
			}
		}
	}
	if s.IsToken() {
		if lim.Tokens > 0 && tokens >= lim.Tokens {
			return nil, ErrTooManyTokens
		}
		if s.Parent != "" {
			var parent *Session
			if r := m.live(s.Parent, now); r != nil {
				parent = &r.s
			}
			if !parentActive(parent, s, now, p) {
				return nil, ErrNotFound
			}
		}
	}
	if !now.After(newest) {
		now = newest.Add(time.Millisecond)
	}
	orig := s
	s = s.Clone()
	s.CreatedAt, s.LastActiveAt = now, now
	var ended []*Session
	if lim.Max > 0 && len(active) >= lim.Max && !s.IsToken() {
		if lim.Mode == LimitReject {
			return nil, ErrLimitReached
		}
		sortForLimit(active, lim.Mode, func(r *memRecord) *Session { return &r.s })
		for _, r := range active[:len(active)-lim.Max+1] {
			ended = append(ended, m.end(r, now, EndLimit, ActorLimit, p))
			r.endedBy = s.ID
		}
	}
	m.capEnded(s.UserID, now, p)

	var others []string
	for _, r := range active {
		if r.s.Active() {
			others = append(others, r.s.Country)
		}
	}
	flags := ""
	if !s.IsToken() { // a token has its parent's flags, and is no sighting
		h := m.historyOf(s.UserID, now, p)
		flags = signInRisk(&h.history, s, others, now, p.Retention)
		for _, f := range strings.Split(flags, ",") {
			if f != "" {
				s.Risk = AddFlag(s.Risk, f)
			}
		}
		h.remember(s.DeviceID, Sighting{Country: s.Country, Lat: s.Lat, Lon: s.Lon, HasCoord: s.HasCoord}, now)
	}
	orig.CreatedAt, orig.LastActiveAt, orig.Risk, orig.OthersActive = s.CreatedAt, s.LastActiveAt, s.Risk, len(others)
	s.OthersActive = 0

	r := &memRecord{s: *s}
	r.purgeAt = p.PurgeAt(&r.s)
	m.sessions[s.ID] = r
	if m.users[s.UserID] == nil {
		m.users[s.UserID] = make(map[string]struct{})
	}
	m.users[s.UserID][s.ID] = struct{}{}
	m.addEvent(LoginEvent(s), p)
	for _, e := range RiskEvents(s, flags, now) {
		m.addEvent(e, p)
	}
	return ended, nil
}

// Discard implements Store.
func (m *Memory) Discard(_ context.Context, s *Session, _ Policy) ([]*Session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r := m.sessions[s.ID]; r != nil && r.s.UserID == s.UserID {
		m.forget(s.ID, s.UserID)
	}
	var ended []*Session
	for id := range m.users[s.UserID] {
		if r := m.sessions[id]; r != nil && r.endedBy == s.ID {
			ended = append(ended, r.s.Clone())
		}
	}
	SortByActivity(ended)
	return ended, nil
}

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

// Validate implements Store.
func (m *Memory) Validate(_ context.Context, id string, hash [32]byte, ip string, now time.Time, p Policy) (Validation, error) {
	now = msTime(now)
	m.mu.RLock()
	r := m.live(id, now)
	if r == nil || r.s.TokenHash != hash {
		m.mu.RUnlock()
		return Validation{Status: Unknown}, nil
	}
	if !r.s.Active() {
		v := Validation{Status: Ended, Session: r.s.Clone()}
		m.mu.RUnlock()
		return v, nil
	}
	if !m.listed(r) {
		v := Validation{Status: Unlisted, Session: r.s.Clone()}
		m.mu.RUnlock()
		return v, nil
	}
	due := p.Expired(&r.s, now) || p.TouchDue(&r.s, now, ip)
	if !due {
		v := Validation{Status: Valid, Session: r.s.Clone()}
		m.mu.RUnlock()
		return v, nil
	}
	m.mu.RUnlock()

	// A write is due: take the write lock and decide again, since another
	// request may have written in between.
	m.mu.Lock()
	defer m.mu.Unlock()
	r = m.live(id, now)
	if r == nil || r.s.TokenHash != hash {
		return Validation{Status: Unknown}, nil
	}
	if !r.s.Active() {
		return Validation{Status: Ended, Session: r.s.Clone()}, nil
	}
	if !m.listed(r) {
		return Validation{Status: Unlisted, Session: r.s.Clone()}, nil
	}
	if p.Expired(&r.s, now) {
		r.s.EndedAt, r.s.EndReason = p.ExpiresAt(&r.s), EndExpired
		r.purgeAt = p.PurgeAt(&r.s)
		return Validation{Status: Expired, Session: r.s.Clone()}, nil
	}
	v := Validation{Status: Valid}
	if p.TouchDue(&r.s, now, ip) {
		if ip != r.s.IP {
			v.PrevIP = r.s.IP
		}
		r.s.LastActiveAt, r.s.IP = now, ip
		r.purgeAt = p.PurgeAt(&r.s)
		v.Touched = true
	}
	v.Session = r.s.Clone()
	return v, nil
}

// listed tells whether the user's index holds the session, as Redis
// checks it: in this store they go together, but the rule is the same.
func (m *Memory) listed(r *memRecord) bool {
	_, ok := m.users[r.s.UserID][r.s.ID]
	return ok
}

// Sight implements Store.
//
// Lua twin: sightScript (redis_scripts.go).
func (m *Memory) Sight(_ context.Context, id string, sg Sighting, at time.Time, p Policy) (*Session, error) {
	at = msTime(at)
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.live(id, at)
	if r == nil || !r.s.Active() || p.Expired(&r.s, at) {
		return nil, ErrNotFound
	}
	prevCountry := r.s.Country
	h := m.historyOf(r.s.UserID, at, p)
	raised := false
	if sg.HasCoord && h.lastLoc != nil && !h.lastLoc.at.Before(at.Add(-p.Retention)) &&
		!HasFlag(r.s.Risk, FlagImpossibleTravel) &&
		ImpossibleTravel(h.lastLoc.lat, h.lastLoc.lon, h.lastLoc.at, sg.Lat, sg.Lon, at) {
		r.s.Risk = AddFlag(r.s.Risk, FlagImpossibleTravel)
		raised = true
	}
	h.remember("", sg, at)
	r.s.IP, r.s.Country, r.s.City = sg.IP, sg.Country, sg.City
	r.s.Lat, r.s.Lon, r.s.HasCoord = sg.Lat, sg.Lon, sg.HasCoord
	if !sg.HasCoord {
		r.s.Lat, r.s.Lon = 0, 0
	}
	m.addEvent(eventFor(&r.s, EventIPChange, at), p)
	if sg.Country != "" && prevCountry != "" && sg.Country != prevCountry {
		m.addEvent(eventFor(&r.s, EventCountryChange, at), p)
	}
	if raised {
		for _, e := range RiskEvents(&r.s, FlagImpossibleTravel, at) {
			m.addEvent(e, p)
		}
	}
	return r.s.Clone(), nil
}

// StepUp implements Store.
func (m *Memory) StepUp(_ context.Context, id string, pr Proof, p Policy) (*Session, error) {
	at := msTime(pr.At)
	pr.At = at
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.live(id, at)
	if r == nil || !r.s.Active() || p.Expired(&r.s, at) {
		return nil, ErrNotFound
	}
	stepUp(&r.s, pr)
	m.addEvent(StepUpEvent(&r.s, at, pr.Method), p)
	return r.s.Clone(), nil
}

// Get implements Store.
func (m *Memory) Get(_ context.Context, id string) (*Session, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	r := m.live(id, m.now())
	if r == nil {
		return nil, ErrNotFound
	}
	return r.s.Clone(), nil
}

// List implements Store. What the cap drops at the next change is left
// out already.
func (m *Memory) List(_ context.Context, userID string, now time.Time, p Policy) ([]*Session, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var all []*Session
	for id := range m.users[userID] {
		if r := m.live(id, now); r != nil {
			all = append(all, r.s.Clone())
		}
	}
	drop := pastCap(all, now, p)
	out := slices.DeleteFunc(all, func(s *Session) bool { return slices.Contains(drop, s) })
	SortByActivity(out)
	return out, nil
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

// End implements Store.
func (m *Memory) End(_ context.Context, id string, at time.Time, reason, actor string, p Policy) (*Session, error) {
	at = msTime(at)
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.live(id, at)
	if r == nil || !r.s.Active() || p.Expired(&r.s, at) {
		return nil, ErrNotFound
	}
	e := m.end(r, at, reason, actor, p)
	m.capEnded(e.UserID, at, p)
	return e, nil
}

// MarkChecked implements Store.
func (m *Memory) MarkChecked(_ context.Context, id string, was, at time.Time, sealed string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.live(id, m.now())
	if r == nil || !r.s.Active() {
		return false, ErrNotFound
	}
	if !msTime(r.s.CheckedAt).Equal(msTime(was)) {
		return false, nil
	}
	r.s.CheckedAt = msTime(at)
	if sealed != "" {
		r.s.SealedTokens = sealed
	}
	return true, nil
}

// SetRoles implements Store.
func (m *Memory) SetRoles(_ context.Context, id, roles string) (*Session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.live(id, m.now())
	if r == nil || !r.s.Active() {
		return nil, ErrNotFound
	}
	r.s.Roles = roles
	return r.s.Clone(), nil
}

// EndUser implements Store.
func (m *Memory) EndUser(_ context.Context, userID, exceptID string, at time.Time, reason, actor string, p Policy) ([]*Session, error) {
	at = msTime(at)
	m.mu.Lock()
	defer m.mu.Unlock()
	var ended []*Session
	for id := range m.users[userID] {
		if id == exceptID {
			continue
		}
		if r := m.live(id, at); r != nil && r.s.Active() && !p.Expired(&r.s, at) && !madeBy(&r.s, exceptID) {
			ended = append(ended, m.end(r, at, reason, actor, p))
		}
	}
	m.capEnded(userID, at, p)
	SortByActivity(ended)
	return ended, nil
}

// EndWithTokens implements Store.
func (m *Memory) EndWithTokens(_ context.Context, id string, at time.Time, reason, actor string, p Policy) ([]*Session, error) {
	at = msTime(at)
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.live(id, at)
	if r == nil {
		return nil, ErrNotFound
	}
	var ended, tokens []*Session
	if r.s.Active() && !p.Expired(&r.s, at) {
		ended = append(ended, m.end(r, at, reason, actor, p))
	}
	for kid := range m.users[r.s.UserID] {
		if k := m.live(kid, at); k != nil && madeBy(&k.s, id) && k.s.Active() && !p.Expired(&k.s, at) {
			tokens = append(tokens, m.end(k, at, reason, actor, p))
		}
	}
	if ended = append(ended, tokens...); len(ended) == 0 {
		return nil, ErrNotFound
	}
	SortByActivity(ended[len(ended)-len(tokens):])
	m.capEnded(r.s.UserID, at, p)
	return ended, nil
}

// Events implements Store.
func (m *Memory) Events(_ context.Context, userID string, since time.Time, limit int) ([]Event, error) {
	now := m.now()
	m.mu.RLock()
	defer m.mu.RUnlock()
	evs := m.events[userID]
	evs = evs[max(0, len(evs)-maxEventsPerUser):]
	var out []Event
	for i := len(evs) - 1; i >= 0; i-- {
		if now.Before(evs[i].purgeAt) && !evs[i].e.At.Before(since) {
			out = append(out, evs[i].e)
		}
	}
	// The trail is in the order things happened; a sign-in's time may be
	// a little ahead (sign-ins of a user are strictly ordered, see Create).
	slices.SortStableFunc(out, newestFirst)
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// Close stops the sweeper. The sessions are kept until the value is
// dropped, which a caddy.UsagePool does only when no config uses it.
func (m *Memory) Close() error {
	m.once.Do(func() { close(m.stop) })
	return nil
}

var _ Store = (*Memory)(nil)
