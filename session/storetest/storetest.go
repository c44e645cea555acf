// Package storetest is the conformance suite every session.Store passes:
// the memory store and Redis answer alike, case by case.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessionauth/caddy-sessionauth/session"
)

// Clock is a settable clock for the store under test.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock starts at the current time, so that stores with real TTLs
// (Redis) keep their keys while the test runs.
func NewClock() *Clock { return &Clock{t: time.Now().Truncate(time.Millisecond)} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// Factory makes a fresh store reading time from now.
type Factory func(t *testing.T, now func() time.Time) session.Store

var policy = session.Policy{
	Lifetime:      24 * time.Hour,
	IdleTimeout:   time.Hour,
	TouchInterval: 5 * time.Minute,
	Retention:     48 * time.Hour,
}

// Hooks reach into a store where the suite needs more than the Store
// interface gives.
type Hooks struct {
	// DropIndex loses the index of a user's sessions, as Redis does when
	// it evicts the key under memory pressure.
	DropIndex func(t *testing.T, st session.Store, user string)
}

// Run runs the suite against stores made by newStore.
func Run(t *testing.T, newStore Factory, hooks ...Hooks) {
	cases := []struct {
		name string
		fn   func(t *testing.T, st session.Store, c *Clock)
	}{
		{"CreateValidate", testCreateValidate},
		{"UnknownAndWrongSecret", testUnknown},
		{"TouchInterval", testTouch},
		{"IPChangeTouchesAtOnce", testIPChange},
		{"IdleTimeout", testIdle},
		{"Lifetime", testLifetime},
		{"NoIdleTimeout", testNoIdle},
		{"End", testEnd},
		{"EndUserExcept", testEndUser},
		{"LimitOldest", testLimitOldest},
		{"LimitLeastRecent", testLimitLeastRecent},
		{"LimitReject", testLimitReject},
		{"LimitUnlimited", testUnlimited},
		{"LimitConcurrent", testLimitConcurrent},
		{"DiscardUndoesCreate", testDiscard},
		{"EndedSessionsCapped", testEndedCap},
		{"EventsNewestFirst", testEventsOrder},
		{"SameMillisecondSignIns", testSameMillisecond},
		{"ListOrderAndIsolation", testList},
		{"Events", testEvents},
		{"FieldsRoundTrip", testFields},
		{"RiskNewDeviceNewCountry", testRiskNew},
		{"RiskDeviceKeptInClearBefore", testRiskLegacyDevice},
		{"IDsOldAndNew", testIDsOldAndNew},
		{"RiskImpossibleTravelAtSignIn", testTravelSignIn},
		{"RiskBaselineAfterRetention", testRiskRetention},
		{"SightIPChange", testSight},
		{"StepUpKeepsSession", testStepUp},
		{"HitCounts", testHit},
		{"RefundTakesOneBack", testRefund},
		{"UsersListsEveryone", testUsers},
		{"OutboxDeliversOnce", testOutbox},
		{"OutboxFullRefusesNew", testOutboxFull},
		{"OutboxChannelsApart", testOutboxChannels},
		{"OthersActiveAtCreate", testOthersActive},
		{"ByIP", testByIP},
		{"ByIPPages", testByIPPages},
		{"RecordEvent", testRecord},
		{"TokenOwnLifetimeNoIdle", testTokenLifetime},
		{"TokenOutsideLimit", testTokenLimit},
		{"TokenFirstUseRecorded", testTokenFirstUse},
		{"TokenEndsWithItsParent", testTokenParent},
		{"EndUserKeepsTheCurrentSessionsTokens", testEndUserKeepsTokens},
		{"TokensCappedPerUser", testTokenCap},
		{"TokenNeedsAnActiveParent", testTokenParentActive},
		{"TokenKeepsItsParentsRisk", testTokenRisk},
		{"StashTakeOnce", testStashTake},
		{"LinksKeepMembersUntilTheirTime", testLinks},
		{"MarkCheckedCompareAndSet", testMarkChecked},
		{"MarkCheckedOneWinner", testMarkCheckedOnce},
		{"SetRolesReplaces", testSetRoles},
		{"StatsCounts", testStatsCounts},
		{"StatsBuckets", testStatsBuckets},
		{"StatsRecent", testStatsRecent},
	}
	for _, h := range hooks {
		if drop := h.DropIndex; drop != nil {
			cases = append(cases, struct {
				name string
				fn   func(t *testing.T, st session.Store, c *Clock)
			}{"UnlistedIsNotValid", func(t *testing.T, st session.Store, c *Clock) { testUnlisted(t, st, c, drop) }})
		}
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := NewClock()
			tc.fn(t, newStore(t, c.Now), c)
		})
	}
	t.Run("Retention", func(t *testing.T) { testRetention(t, newStore(t, time.Now)) })
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return c
}

// user returns a user id no other test uses, so stores may be shared.
func user() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "user-" + hex.EncodeToString(b[:])
}

// cred is a minted session's credential as a client holds it.
type cred struct {
	id   string
	hash [32]byte
}

func mint(t *testing.T, st session.Store, c *Clock, uid, ip string, lim session.Limit) (cred, []*session.Session, error) {
	t.Helper()
	id, cookie, hash, err := st.NewCredential(ctx(t), uid)
	if err != nil {
		t.Fatal(err)
	}
	if _, h, err := session.ParseCredential(cookie); err != nil || h != hash {
		t.Fatalf("minted credential does not parse back: %v", err)
	}
	now := c.Now()
	s := &session.Session{ID: id, UserID: uid, TokenHash: hash, IP: ip, LoginIP: ip,
		CreatedAt: now, LastActiveAt: now}
	ended, err := st.Create(ctx(t), s, policy, lim)
	return cred{id, hash}, ended, err
}

func mustMint(t *testing.T, st session.Store, c *Clock, uid string) cred {
	t.Helper()
	cr, _, err := mint(t, st, c, uid, "192.0.2.1", session.Limit{})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	return cr
}

func validate(t *testing.T, st session.Store, c *Clock, cr cred, ip string) session.Validation {
	t.Helper()
	v, err := st.Validate(ctx(t), cr.id, cr.hash, ip, c.Now(), policy)
	if err != nil {
		t.Fatalf("validate: %v", err)
	}
	return v
}

func wantStatus(t *testing.T, v session.Validation, want session.Status) {
	t.Helper()
	if v.Status != want {
		t.Fatalf("status = %v, want %v", v.Status, want)
	}
	if want != session.Unknown && v.Session == nil {
		t.Fatalf("status %v without a session", want)
	}
}

func testCreateValidate(t *testing.T, st session.Store, c *Clock) {
	uid := user()
	cr := mustMint(t, st, c, uid)
	v := validate(t, st, c, cr, "192.0.2.1")
	wantStatus(t, v, session.Valid)
	if v.Session.UserID != uid || v.Session.ID != cr.id || v.Touched {
		t.Fatalf("got %+v touched=%v", v.Session, v.Touched)
	}
	if !v.Session.CreatedAt.Equal(c.Now()) {
		t.Fatalf("created_at = %v, want %v", v.Session.CreatedAt, c.Now())
	}
}

func testUnknown(t *testing.T, st session.Store, c *Clock) {
	cr := mustMint(t, st, c, user())
	bad := cr
	bad.hash[0] ^= 1
	wantStatus(t, validate(t, st, c, bad, "192.0.2.1"), session.Unknown)
	other, _, _, _ := st.NewCredential(ctx(t), user())
	wantStatus(t, validate(t, st, c, cred{id: other}, "192.0.2.1"), session.Unknown)
	if _, err := st.Get(ctx(t), other); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("get unknown: %v", err)
	}
	if _, err := st.End(ctx(t), other, c.Now(), session.EndRevoked, session.ActorAdmin, policy); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("end unknown: %v", err)
	}
}

func testTouch(t *testing.T, st session.Store, c *Clock) {
	cr := mustMint(t, st, c, user())
	created := c.Now()
	c.Advance(policy.TouchInterval - time.Second)
	v := validate(t, st, c, cr, "192.0.2.1")
	if v.Touched || !v.Session.LastActiveAt.Equal(created) {
		t.Fatalf("touched before the interval: %v %v", v.Touched, v.Session.LastActiveAt)
	}
	c.Advance(time.Second)
	v = validate(t, st, c, cr, "192.0.2.1")
	if !v.Touched || !v.Session.LastActiveAt.Equal(c.Now()) {
		t.Fatalf("not touched after the interval: %v %v", v.Touched, v.Session.LastActiveAt)
	}
	// The write is visible to the next read, and not repeated.
	c.Advance(time.Minute)
	v = validate(t, st, c, cr, "192.0.2.1")
	if v.Touched || !v.Session.LastActiveAt.Equal(c.Now().Add(-time.Minute)) {
		t.Fatalf("second touch within the interval: %v %v", v.Touched, v.Session.LastActiveAt)
	}
}

func testIPChange(t *testing.T, st session.Store, c *Clock) {
	cr := mustMint(t, st, c, user())
	c.Advance(time.Second)
	v := validate(t, st, c, cr, "198.51.100.7")
	if !v.Touched || v.Session.IP != "198.51.100.7" || v.PrevIP != "192.0.2.1" || v.Session.LoginIP != "192.0.2.1" {
		t.Fatalf("ip change: touched=%v ip=%q prev=%q login=%q", v.Touched, v.Session.IP, v.PrevIP, v.Session.LoginIP)
	}
	c.Advance(time.Second)
	v = validate(t, st, c, cr, "198.51.100.7")
	if v.Touched || v.PrevIP != "" || v.Session.LoginIP != "192.0.2.1" {
		t.Fatalf("same ip touched again: %+v", v)
	}
	// And again: the login IP is the first one, not the previous one.
	c.Advance(time.Second)
	v = validate(t, st, c, cr, "203.0.113.5")
	if !v.Touched || v.PrevIP != "198.51.100.7" || v.Session.LoginIP != "192.0.2.1" {
		t.Fatalf("second ip change: %+v", v)
	}
	if got, err := st.Get(ctx(t), cr.id); err != nil || got.IP != "203.0.113.5" || got.LoginIP != "192.0.2.1" {
		t.Fatalf("stored after two changes: %+v %v", got, err)
	}
}

func testIdle(t *testing.T, st session.Store, c *Clock) {
	cr := mustMint(t, st, c, user())
	c.Advance(policy.IdleTimeout - time.Millisecond)
	wantStatus(t, validate(t, st, c, cr, "192.0.2.1"), session.Valid) // touches
	c.Advance(policy.IdleTimeout - time.Millisecond)
	wantStatus(t, validate(t, st, c, cr, "192.0.2.1"), session.Valid)
	c.Advance(policy.IdleTimeout)
	v := validate(t, st, c, cr, "192.0.2.1")
	wantStatus(t, v, session.Expired)
	if v.Session.EndReason != session.EndExpired {
		t.Fatalf("end reason %q", v.Session.EndReason)
	}
	// Once expired, it stays ended even if time could be wound back.
	v = validate(t, st, c, cr, "192.0.2.1")
	wantStatus(t, v, session.Ended)
	s, err := st.Get(ctx(t), cr.id)
	if err != nil || s.Active() || s.EndReason != session.EndExpired {
		t.Fatalf("get after expiry: %+v %v", s, err)
	}
}

func testLifetime(t *testing.T, st session.Store, c *Clock) {
	cr := mustMint(t, st, c, user())
	for elapsed := time.Duration(0); elapsed < policy.Lifetime-policy.IdleTimeout; elapsed += policy.IdleTimeout / 2 {
		c.Advance(policy.IdleTimeout / 2)
		wantStatus(t, validate(t, st, c, cr, "192.0.2.1"), session.Valid)
	}
	// 23h have passed with activity every 30 minutes; at 24h it ends.
	c.Advance(policy.IdleTimeout - time.Millisecond)
	wantStatus(t, validate(t, st, c, cr, "192.0.2.1"), session.Valid)
	c.Advance(time.Millisecond)
	wantStatus(t, validate(t, st, c, cr, "192.0.2.1"), session.Expired)
}

func testNoIdle(t *testing.T, st session.Store, c *Clock) {
	p := policy
	p.IdleTimeout = 0
	uid := user()
	id, _, hash, _ := st.NewCredential(ctx(t), uid)
	now := c.Now()
	if _, err := st.Create(ctx(t), &session.Session{ID: id, UserID: uid, TokenHash: hash, CreatedAt: now, LastActiveAt: now}, p, session.Limit{}); err != nil {
		t.Fatal(err)
	}
	c.Advance(p.Lifetime - time.Millisecond)
	if v, _ := st.Validate(ctx(t), id, hash, "", c.Now(), p); v.Status != session.Valid {
		t.Fatalf("idle 0 expired early: %v", v.Status)
	}
	c.Advance(time.Millisecond)
	if v, _ := st.Validate(ctx(t), id, hash, "", c.Now(), p); v.Status != session.Expired {
		t.Fatalf("lifetime not enforced: %v", v.Status)
	}
}

func testEnd(t *testing.T, st session.Store, c *Clock) {
	cr := mustMint(t, st, c, user())
	c.Advance(time.Second)
	s, err := st.End(ctx(t), cr.id, c.Now(), session.EndLogout, session.ActorSelf, policy)
	if err != nil || s.Active() || s.EndReason != session.EndLogout || !s.EndedAt.Equal(c.Now()) {
		t.Fatalf("end: %+v %v", s, err)
	}
	wantStatus(t, validate(t, st, c, cr, "192.0.2.1"), session.Ended)
	if _, err := st.End(ctx(t), cr.id, c.Now(), session.EndRevoked, session.ActorAdmin, policy); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("second end: %v", err)
	}
	got, err := st.Get(ctx(t), cr.id)
	if err != nil || got.Active() || got.EndReason != session.EndLogout {
		t.Fatalf("get ended: %+v %v", got, err)
	}
}

func testEndUser(t *testing.T, st session.Store, c *Clock) {
	uid, other := user(), user()
	var creds []cred
	for i := 0; i < 3; i++ {
		creds = append(creds, mustMint(t, st, c, uid))
		c.Advance(time.Second)
	}
	otherCred := mustMint(t, st, c, other)
	ended, err := st.EndUser(ctx(t), uid, creds[1].id, c.Now(), session.EndRevoked, session.ActorAdmin, policy)
	if err != nil || len(ended) != 2 {
		t.Fatalf("end user: %d %v", len(ended), err)
	}
	wantStatus(t, validate(t, st, c, creds[0], "192.0.2.1"), session.Ended)
	wantStatus(t, validate(t, st, c, creds[1], "192.0.2.1"), session.Valid)
	wantStatus(t, validate(t, st, c, creds[2], "192.0.2.1"), session.Ended)
	wantStatus(t, validate(t, st, c, otherCred, "192.0.2.1"), session.Valid)
	ended, err = st.EndUser(ctx(t), uid, "", c.Now(), session.EndRevoked, session.ActorUpstream, policy)
	if err != nil || len(ended) != 1 || ended[0].ID != creds[1].id {
		t.Fatalf("end all: %v %v", ended, err)
	}
	if ended, _ := st.EndUser(ctx(t), user(), "", c.Now(), session.EndRevoked, session.ActorAdmin, policy); len(ended) != 0 {
		t.Fatalf("ended sessions of a user with none: %v", ended)
	}
}

func activeIDs(t *testing.T, st session.Store, c *Clock, uid string) map[string]bool {
	t.Helper()
	list, err := st.List(ctx(t), uid, c.Now(), policy)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, s := range list {
		if policy.View(s, c.Now()).Active() {
			out[s.ID] = true
		}
	}
	return out
}

func testLimitOldest(t *testing.T, st session.Store, c *Clock) {
	uid := user()
	lim := session.Limit{Max: 3, Mode: session.LimitOldest}
	var creds []cred
	for i := 0; i < 3; i++ {
		cr, ended, err := mint(t, st, c, uid, "192.0.2.1", lim)
		if err != nil || len(ended) != 0 {
			t.Fatalf("mint %d: %v %v", i, ended, err)
		}
		creds = append(creds, cr)
		c.Advance(time.Minute)
	}
	// The oldest is the most recently active: oldest still goes.
	c.Advance(policy.TouchInterval)
	validate(t, st, c, creds[0], "192.0.2.1")
	cr, ended, err := mint(t, st, c, uid, "192.0.2.1", lim)
	if err != nil || len(ended) != 1 || ended[0].ID != creds[0].id || ended[0].EndReason != session.EndLimit {
		t.Fatalf("limit oldest: %v %v", ended, err)
	}
	wantStatus(t, validate(t, st, c, creds[0], "192.0.2.1"), session.Ended)
	if got := activeIDs(t, st, c, uid); len(got) != 3 || !got[cr.id] {
		t.Fatalf("active after limit: %v", got)
	}
	evs, _ := st.Events(ctx(t), uid, time.Time{}, 0)
	found := false
	for _, e := range evs {
		if e.Type == session.EventRevoke && e.SessionID == creds[0].id && e.Actor == session.ActorLimit && e.Reason == session.EndLimit {
			found = true
		}
	}
	if !found {
		t.Fatalf("no limit revoke event in %+v", evs)
	}
}

func testLimitLeastRecent(t *testing.T, st session.Store, c *Clock) {
	uid := user()
	lim := session.Limit{Max: 2, Mode: session.LimitLeastRecent}
	a, _, _ := mint(t, st, c, uid, "192.0.2.1", lim)
	c.Advance(time.Minute)
	b, _, _ := mint(t, st, c, uid, "192.0.2.1", lim)
	c.Advance(policy.TouchInterval)
	validate(t, st, c, a, "192.0.2.1") // a is now the more recent
	_, ended, err := mint(t, st, c, uid, "192.0.2.1", lim)
	if err != nil || len(ended) != 1 || ended[0].ID != b.id {
		t.Fatalf("least recent: %v %v", ended, err)
	}
}

func testLimitReject(t *testing.T, st session.Store, c *Clock) {
	uid := user()
	lim := session.Limit{Max: 2, Mode: session.LimitReject}
	for i := 0; i < 2; i++ {
		if _, _, err := mint(t, st, c, uid, "192.0.2.1", lim); err != nil {
			t.Fatal(err)
		}
	}
	cr, _, err := mint(t, st, c, uid, "192.0.2.1", lim)
	if !errors.Is(err, session.ErrLimitReached) {
		t.Fatalf("reject: %v", err)
	}
	wantStatus(t, validate(t, st, c, cr, "192.0.2.1"), session.Unknown)
	// Ended and expired sessions do not count.
	list, _ := st.List(ctx(t), uid, c.Now(), policy)
	if _, err := st.End(ctx(t), list[0].ID, c.Now(), session.EndLogout, session.ActorSelf, policy); err != nil {
		t.Fatal(err)
	}
	if _, _, err := mint(t, st, c, uid, "192.0.2.1", lim); err != nil {
		t.Fatalf("after logout: %v", err)
	}
	c.Advance(policy.IdleTimeout + time.Second) // sign-ins above may sit a few ms later
	for i := 0; i < 2; i++ {
		if _, _, err := mint(t, st, c, uid, "192.0.2.1", lim); err != nil {
			t.Fatalf("after expiry: %v", err)
		}
	}
}

func testUnlimited(t *testing.T, st session.Store, c *Clock) {
	uid := user()
	for i := 0; i < 12; i++ {
		if _, ended, err := mint(t, st, c, uid, "192.0.2.1", session.Limit{}); err != nil || len(ended) != 0 {
			t.Fatalf("unlimited: %v %v", ended, err)
		}
	}
	if got := activeIDs(t, st, c, uid); len(got) != 12 {
		t.Fatalf("active = %d", len(got))
	}
}

func testLimitConcurrent(t *testing.T, st session.Store, c *Clock) {
	uid := user()
	lim := session.Limit{Max: 5, Mode: session.LimitOldest}
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, _, hash, _ := st.NewCredential(ctx(t), uid)
			now := c.Now()
			_, err := st.Create(context.Background(), &session.Session{ID: id, UserID: uid, TokenHash: hash, CreatedAt: now, LastActiveAt: now}, policy, lim)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := activeIDs(t, st, c, uid); len(got) != 5 {
		t.Fatalf("20 parallel sign-ins with max 5 left %d active", len(got))
	}
}

// A sign-in whose Create failed is discarded: nothing of it stays listed
// or counted, and what it ended for the limit is handed back to record.
func testDiscard(t *testing.T, st session.Store, c *Clock) {
	uid := user()
	lim := session.Limit{Max: 1, Mode: session.LimitOldest}
	a, _, _ := mint(t, st, c, uid, "192.0.2.1", lim)
	c.Advance(time.Second)
	b, ended, err := mint(t, st, c, uid, "192.0.2.1", lim)
	if err != nil || len(ended) != 1 || ended[0].ID != a.id {
		t.Fatalf("second sign-in: %v %v", ended, err)
	}
	got, err := st.Discard(ctx(t), &session.Session{ID: b.id, UserID: uid}, policy)
	if err != nil || len(got) != 1 || got[0].ID != a.id || got[0].Active() || got[0].EndReason != session.EndLimit {
		t.Fatalf("discard: %v %v", got, err)
	}
	wantStatus(t, validate(t, st, c, b, "192.0.2.1"), session.Unknown)
	wantStatus(t, validate(t, st, c, a, "192.0.2.1"), session.Ended)
	if l, err := st.List(ctx(t), uid, c.Now(), policy); err != nil || len(l) != 1 || l[0].ID != a.id {
		t.Fatalf("list after discard: %v %v", l, err)
	}
	if _, err := st.Get(ctx(t), b.id); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("get of a discarded session: %v", err)
	}
	// Nothing counts towards the limit; a second discard changes nothing.
	if _, _, err := mint(t, st, c, uid, "192.0.2.1", session.Limit{Max: 1, Mode: session.LimitReject}); err != nil {
		t.Fatalf("sign-in after discard: %v", err)
	}
	if again, err := st.Discard(ctx(t), &session.Session{ID: b.id, UserID: uid}, policy); err != nil || len(again) != 1 {
		t.Fatalf("second discard: %v %v", again, err)
	}
}

// A user keeps the newest 50 ended sessions; older ones are dropped, and
// their audit events stay.
func testEndedCap(t *testing.T, st session.Store, c *Clock) {
	uid := user()
	lim := session.Limit{Max: 1, Mode: session.LimitOldest}
	var creds []cred
	for i := 0; i < 60; i++ { // each sign-in ends the one before
		cr, _, err := mint(t, st, c, uid, "192.0.2.1", lim)
		if err != nil {
			t.Fatal(err)
		}
		creds = append(creds, cr)
		c.Advance(time.Second)
	}
	listed := func() map[string]bool {
		t.Helper()
		l, err := st.List(ctx(t), uid, c.Now(), policy)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for _, s := range l {
			out[s.ID] = s.Active()
		}
		return out
	}
	wantListed := func(ended []cred, active ...cred) {
		t.Helper()
		got := listed()
		if len(got) != len(ended)+len(active) {
			t.Fatalf("%d sessions listed, want %d ended and %d active", len(got), len(ended), len(active))
		}
		for _, cr := range ended {
			if a, ok := got[cr.id]; !ok || a {
				t.Fatalf("session %s: listed %v, active %v; want it ended", cr.id, ok, a)
			}
		}
		for _, cr := range active {
			if !got[cr.id] {
				t.Fatalf("active session %s not listed", cr.id)
			}
		}
	}
	wantListed(creds[9:59], creds[59])
	for _, cr := range creds[:9] {
		if _, err := st.Get(ctx(t), cr.id); !errors.Is(err, session.ErrNotFound) {
			t.Fatalf("a session past the cap is kept: %v", err)
		}
	}
	// Ending more keeps the newest 50 ended, whichever way they end.
	if _, err := st.EndUser(ctx(t), uid, "", c.Now(), session.EndRevoked, session.ActorAdmin, policy); err != nil {
		t.Fatal(err)
	}
	wantListed(creds[10:60])
	c.Advance(time.Second)
	last := mustMint(t, st, c, uid)
	c.Advance(time.Second)
	if _, err := st.End(ctx(t), last.id, c.Now(), session.EndLogout, session.ActorSelf, policy); err != nil {
		t.Fatal(err)
	}
	wantListed(append(creds[11:60:60], last))
	// The audit trail keeps every sign-in and every end.
	evs, err := st.Events(ctx(t), uid, time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for i, e := range evs {
		count[e.Type]++
		if i > 0 && e.At.After(evs[i-1].At) {
			t.Fatalf("events out of order at %d: %v after %v", i, e.At, evs[i-1].At)
		}
	}
	if count["login"] != 61 || count["revoke"] != 60 || count["logout"] != 1 {
		t.Fatalf("events by type: %v", count)
	}
}

// Sign-ins in one millisecond are moved apart (a little ahead of the
// clock); events still come newest first, as the admin API pages them.
func testEventsOrder(t *testing.T, st session.Store, c *Clock) {
	uid := user()
	for i := 0; i < 4; i++ {
		mustMint(t, st, c, uid)
	}
	if _, err := st.EndUser(ctx(t), uid, "", c.Now(), session.EndRevoked, session.ActorAdmin, policy); err != nil {
		t.Fatal(err)
	}
	evs, err := st.Events(ctx(t), uid, time.Time{}, 0)
	if err != nil || len(evs) != 8 {
		t.Fatalf("events: %d %v", len(evs), err)
	}
	for i := 1; i < len(evs); i++ {
		if evs[i].At.After(evs[i-1].At) {
			t.Fatalf("event %d (%s at %v) after one at %v", i, evs[i].Type, evs[i].At, evs[i-1].At)
		}
	}
}

func testList(t *testing.T, st session.Store, c *Clock) {
	uid := user()
	a := mustMint(t, st, c, uid)
	c.Advance(time.Minute)
	b := mustMint(t, st, c, uid)
	c.Advance(time.Minute)
	d := mustMint(t, st, c, uid)
	mustMint(t, st, c, user())
	c.Advance(policy.TouchInterval)
	validate(t, st, c, a, "192.0.2.1")
	if _, err := st.End(ctx(t), d.id, c.Now(), session.EndLogout, session.ActorSelf, policy); err != nil {
		t.Fatal(err)
	}
	list, err := st.List(ctx(t), uid, c.Now(), policy)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range list {
		ids = append(ids, s.ID)
	}
	want := []string{a.id, d.id, b.id}
	if fmt.Sprint(ids) != fmt.Sprint(want) {
		t.Fatalf("list order %v, want %v", ids, want)
	}
	if list[1].Active() || list[1].EndReason != session.EndLogout {
		t.Fatalf("ended session not shown as ended: %+v", list[1])
	}
	if l, err := st.List(ctx(t), user(), c.Now(), policy); err != nil || len(l) != 0 {
		t.Fatalf("list of unknown user: %v %v", l, err)
	}
}

func testEvents(t *testing.T, st session.Store, c *Clock) {
	uid := user()
	a := mustMint(t, st, c, uid)
	c.Advance(time.Second)
	b := mustMint(t, st, c, uid)
	c.Advance(time.Second)
	if _, err := st.End(ctx(t), a.id, c.Now(), session.EndLogout, session.ActorSelf, policy); err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Second)
	if _, err := st.EndUser(ctx(t), uid, "", c.Now(), session.EndRevoked, session.ActorAdmin, policy); err != nil {
		t.Fatal(err)
	}
	evs, err := st.Events(ctx(t), uid, time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range evs {
		got = append(got, e.Type+"/"+e.Actor+"/"+e.SessionID[:4])
		if e.UserID != uid || e.At.IsZero() {
			t.Fatalf("event without user or time: %+v", e)
		}
	}
	want := []string{"revoke/admin/" + b.id[:4], "logout/self/" + a.id[:4], "login//" + b.id[:4], "login//" + a.id[:4]}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	if evs[0].IP != "192.0.2.1" || !evs[0].At.Equal(c.Now()) {
		t.Fatalf("event fields: %+v", evs[0])
	}
	if two, _ := st.Events(ctx(t), uid, time.Time{}, 2); len(two) != 2 || two[0].Type != "revoke" {
		t.Fatalf("limit 2: %+v", two)
	}
	if recent, _ := st.Events(ctx(t), uid, c.Now().Add(-time.Second), 0); len(recent) != 2 {
		t.Fatalf("since: %+v", recent)
	}
}

// newSession is a fresh session of uid, signed in now from 192.0.2.1.
func newSession(t *testing.T, st session.Store, c *Clock, uid string) *session.Session {
	t.Helper()
	id, _, hash, err := st.NewCredential(ctx(t), uid)
	if err != nil {
		t.Fatal(err)
	}
	now := c.Now()
	return &session.Session{ID: id, UserID: uid, TokenHash: hash, IP: "192.0.2.1", LoginIP: "192.0.2.1", CreatedAt: now, LastActiveAt: now}
}

// mintToken creates an API token's session for uid with its own lifetime.
func mintToken(t *testing.T, st session.Store, c *Clock, uid string, life time.Duration, lim session.Limit) cred {
	t.Helper()
	s := newSession(t, st, c, uid)
	s.Kind, s.Label, s.AuthMethod, s.TokenLifetime = session.KindToken, "ci deploy", session.MethodToken, life
	if _, err := st.Create(ctx(t), s, policy, lim); err != nil {
		t.Fatalf("create token: %v", err)
	}
	return cred{s.ID, s.TokenHash}
}

// An API token lives for its own lifetime, longer than the policy's,
// with no idle timeout; then it expires like any session.
func testTokenLifetime(t *testing.T, st session.Store, c *Clock) {
	uid := user()
	life := 3 * policy.Lifetime
	tok := mintToken(t, st, c, uid, life, session.Limit{})
	c.Advance(policy.IdleTimeout + time.Minute) // idle past the policy's idle timeout
	v := validate(t, st, c, tok, "192.0.2.1")
	wantStatus(t, v, session.Valid)
	if v.Session.Kind != session.KindToken || v.Session.Label != "ci deploy" || v.Session.TokenLifetime != life {
		t.Fatalf("token fields: %+v", v.Session)
	}
	c.Advance(policy.Lifetime) // past the policy's lifetime, within its own
	wantStatus(t, validate(t, st, c, tok, "192.0.2.1"), session.Valid)
	l, err := st.List(ctx(t), uid, c.Now(), policy)
	if err != nil || len(l) != 1 || !l[0].Active() {
		t.Fatalf("list: %v %v", l, err)
	}
	c.Advance(life)
	wantStatus(t, validate(t, st, c, tok, "192.0.2.1"), session.Expired)
}

// A token's first use is written at once, from the address it was created
// from too, so that "last used" never says "never" of a token in use;
// later uses touch as sessions do.
func testTokenFirstUse(t *testing.T, st session.Store, c *Clock) {
	uid := user()
	tok := mintToken(t, st, c, uid, 2*policy.Lifetime, session.Limit{})
	c.Advance(time.Second) // well within the touch interval
	if v := validate(t, st, c, tok, "192.0.2.1"); v.Status != session.Valid || !v.Touched || !v.Session.LastActiveAt.Equal(c.Now()) {
		t.Fatalf("first use: touched %v, last active %v, want %v", v.Touched, v.Session.LastActiveAt, c.Now())
	}
	c.Advance(time.Second)
	if v := validate(t, st, c, tok, "192.0.2.1"); v.Status != session.Valid || v.Touched {
		t.Fatalf("second use within the touch interval: touched %v", v.Touched)
	}
}

// Tokens are not counted in max_sessions, never give way to a sign-in
// over it, and are created even when the browser sessions are at the
// limit (mode reject included).
func testTokenLimit(t *testing.T, st session.Store, c *Clock) {
	uid := user()
	lim := session.Limit{Max: 1, Mode: session.LimitOldest}
	tok := mintToken(t, st, c, uid, 2*policy.Lifetime, lim)
	c.Advance(time.Second)
	browser := mustMint(t, st, c, uid)
	c.Advance(time.Second)
	if _, ended, err := mint(t, st, c, uid, "192.0.2.1", lim); err != nil || len(ended) != 1 || ended[0].ID != browser.id {
		t.Fatalf("over the limit ended %v (%v), want the browser session only", ended, err)
	}
	wantStatus(t, validate(t, st, c, tok, "192.0.2.1"), session.Valid)
	c.Advance(time.Second)
	mintToken(t, st, c, uid, policy.Lifetime, session.Limit{Max: 1, Mode: session.LimitReject})
	if n := len(activeIDs(t, st, c, uid)); n != 3 {
		t.Fatalf("%d active, want two tokens and one browser session", n)
	}
}

// mintChild creates an API token that the session parent made.
func mintChild(t *testing.T, st session.Store, c *Clock, uid, parent string, lim session.Limit) (cred, error) {
	t.Helper()
	s := newSession(t, st, c, uid)
	s.Kind, s.Label, s.AuthMethod, s.TokenLifetime, s.Parent = session.KindToken, "made by "+parent, session.MethodToken, 2*policy.Lifetime, parent
	_, err := st.Create(ctx(t), s, policy, lim)
	return cred{s.ID, s.TokenHash}, err
}

func mustMintChild(t *testing.T, st session.Store, c *Clock, uid, parent string) cred {
	t.Helper()
	cr, err := mintChild(t, st, c, uid, parent, session.Limit{})
	if err != nil {
		t.Fatalf("create token: %v", err)
	}
	return cr
}

func idsOf(ss []*session.Session) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.ID
	}
	return out
}

// SPEC 12: revoking a session ends the tokens it made, in the same
// operation; signing it out does not, and revoking it afterwards still
// ends them. Other sessions' tokens and the admin's stay.
func testTokenParent(t *testing.T, st session.Store, c *Clock) {
	uid := user()
	parent, other := mustMint(t, st, c, uid), mustMint(t, st, c, uid)
	c.Advance(time.Second)
	tokA, tokA2 := mustMintChild(t, st, c, uid, parent.id), mustMintChild(t, st, c, uid, parent.id)
	tokB := mustMintChild(t, st, c, uid, other.id)
	admin := mintToken(t, st, c, uid, 2*policy.Lifetime, session.Limit{})
	c.Advance(time.Second)

	if _, err := st.End(ctx(t), parent.id, c.Now(), session.EndLogout, session.ActorSelf, policy); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, validate(t, st, c, tokA, "192.0.2.1"), session.Valid) // sign-out: the tokens stay
	c.Advance(time.Second)
	ended, err := st.EndWithTokens(ctx(t), parent.id, c.Now(), session.EndRevoked, session.ActorLink, policy)
	if err != nil || len(ended) != 2 || !slices.Contains(idsOf(ended), tokA.id) || !slices.Contains(idsOf(ended), tokA2.id) {
		t.Fatalf("revoking a signed-out parent ended %v (%v), want its two tokens", idsOf(ended), err)
	}
	for _, e := range ended {
		if e.Active() || e.EndReason != session.EndRevoked {
			t.Fatalf("ended token: %+v", e)
		}
	}
	wantStatus(t, validate(t, st, c, tokA, "192.0.2.1"), session.Ended)
	if _, err := st.EndWithTokens(ctx(t), parent.id, c.Now(), session.EndRevoked, session.ActorLink, policy); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("nothing left to end: %v", err)
	}
	ended, err = st.EndWithTokens(ctx(t), other.id, c.Now(), session.EndRevoked, session.ActorSelf, policy)
	if err != nil || fmt.Sprint(idsOf(ended)) != fmt.Sprint([]string{other.id, tokB.id}) {
		t.Fatalf("revoking an active parent ended %v (%v), want it first, then its token", idsOf(ended), err)
	}
	wantStatus(t, validate(t, st, c, other, "192.0.2.1"), session.Ended)
	wantStatus(t, validate(t, st, c, tokB, "192.0.2.1"), session.Ended)
	wantStatus(t, validate(t, st, c, admin, "192.0.2.1"), session.Valid)
	if _, err := st.EndWithTokens(ctx(t), strings.Repeat("0", len(parent.id)), c.Now(), session.EndRevoked, session.ActorSelf, policy); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("an unknown id: %v", err)
	}
	// A token ended on its own ends nothing else.
	tokC := mustMintChild(t, st, c, uid, mustMint(t, st, c, uid).id)
	if ended, err := st.EndWithTokens(ctx(t), tokC.id, c.Now(), session.EndRevoked, session.ActorSelf, policy); err != nil || len(ended) != 1 {
		t.Fatalf("a token alone: %v %v", idsOf(ended), err)
	}
	evs, _ := st.Events(ctx(t), uid, time.Time{}, 0)
	revoked := 0
	for _, e := range evs {
		if e.Type == session.EventRevoke && (e.SessionID == tokA.id || e.SessionID == tokB.id) {
			revoked++
		}
	}
	if revoked != 2 {
		t.Fatalf("revoke events for the tokens: %d", revoked)
	}
}

// "Sign out all other sessions" (EndUser with an exception) never ends
// the tokens the kept session made; it ends every other token.
func testEndUserKeepsTokens(t *testing.T, st session.Store, c *Clock) {
	uid := user()
	cur, other := mustMint(t, st, c, uid), mustMint(t, st, c, uid)
	c.Advance(time.Second)
	mine, theirs := mustMintChild(t, st, c, uid, cur.id), mustMintChild(t, st, c, uid, other.id)
	admin := mintToken(t, st, c, uid, 2*policy.Lifetime, session.Limit{})
	ended, err := st.EndUser(ctx(t), uid, cur.id, c.Now(), session.EndRevoked, session.ActorSelf, policy)
	want := []string{other.id, theirs.id, admin.id}
	if err != nil || len(ended) != 3 || !slices.Contains(idsOf(ended), want[0]) || !slices.Contains(idsOf(ended), want[1]) || !slices.Contains(idsOf(ended), want[2]) {
		t.Fatalf("ended %v (%v), want %v", idsOf(ended), err, want)
	}
	wantStatus(t, validate(t, st, c, cur, "192.0.2.1"), session.Valid)
	wantStatus(t, validate(t, st, c, mine, "192.0.2.1"), session.Valid)
	if ended, err := st.EndUser(ctx(t), uid, "", c.Now(), session.EndRevoked, session.ActorAdmin, policy); err != nil || len(ended) != 2 {
		t.Fatalf("everything: %v %v", idsOf(ended), err)
	}
}

// Limit.Tokens caps a user's live tokens: one more is refused and nothing
// is written; ended and expired tokens and browser sessions do not count.
func testTokenCap(t *testing.T, st session.Store, c *Clock) {
	uid := user()
	lim := session.Limit{Max: 1, Mode: session.LimitReject, Tokens: 2}
	mustMint(t, st, c, uid)
	first := mintToken(t, st, c, uid, time.Hour, lim)
	mintToken(t, st, c, uid, 2*policy.Lifetime, lim)
	s := newSession(t, st, c, uid)
	s.Kind, s.Label, s.TokenLifetime = session.KindToken, "one too many", policy.Lifetime
	if _, err := st.Create(ctx(t), s, policy, lim); !errors.Is(err, session.ErrTooManyTokens) {
		t.Fatalf("a third token: %v", err)
	}
	if _, err := st.Get(ctx(t), s.ID); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("the refused token was stored: %v", err)
	}
	c.Advance(time.Hour + time.Second) // the first expires
	mintToken(t, st, c, uid, policy.Lifetime, lim)
	if _, err := st.End(ctx(t), first.id, c.Now(), session.EndRevoked, session.ActorSelf, policy); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("the expired token is still active: %v", err)
	}
	if n := len(activeIDs(t, st, c, uid)); n != 2 {
		t.Fatalf("%d active, want the two live tokens (the browser session idled out)", n)
	}
}

// A token is made only from an active session of its own user: one
// revoked meanwhile (or another user's, or a token) makes none.
func testTokenParentActive(t *testing.T, st session.Store, c *Clock) {
	uid := user()
	parent := mustMint(t, st, c, uid)
	if _, err := st.End(ctx(t), parent.id, c.Now(), session.EndRevoked, session.ActorSelf, policy); err != nil {
		t.Fatal(err)
	}
	live := mustMint(t, st, c, uid)
	tok := mustMintChild(t, st, c, uid, live.id)
	for name, p := range map[string]string{"ended": parent.id, "another user's": mustMint(t, st, c, user()).id,
		"a token": tok.id, "unknown": strings.Repeat("0", len(parent.id))} {
		cr, err := mintChild(t, st, c, uid, p, session.Limit{})
		if !errors.Is(err, session.ErrNotFound) {
			t.Fatalf("parent %s: %v", name, err)
		}
		if _, err := st.Get(ctx(t), cr.id); !errors.Is(err, session.ErrNotFound) {
			t.Fatalf("parent %s: the token was stored: %v", name, err)
		}
	}
	c.Advance(policy.IdleTimeout + time.Second) // the parent idles out
	if _, err := mintChild(t, st, c, uid, live.id, session.Limit{}); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("parent expired: %v", err)
	}
}

// A token keeps the flags its creator gave it (its parent's) and raises
// none of its own at creation: no risk event, and its place is not
// remembered as the user's (a later sign-in from there is still new).
func testTokenRisk(t *testing.T, st session.Store, c *Clock) {
	uid := user()
	parent, _ := signInAt(t, st, c, uid, "d1", berlin)
	c.Advance(time.Minute)
	s := newSession(t, st, c, uid)
	s.Kind, s.TokenLifetime, s.Parent, s.Risk = session.KindToken, 2*policy.Lifetime, parent.id, session.FlagIPChanged
	s.Country, s.LoginCountry, s.Lat, s.Lon, s.HasCoord = newYork.country, newYork.country, newYork.lat, newYork.lon, true
	if _, err := st.Create(ctx(t), s, policy, session.Limit{}); err != nil {
		t.Fatal(err)
	}
	got, err := st.Get(ctx(t), s.ID)
	if err != nil || s.Risk != session.FlagIPChanged || got.Risk != session.FlagIPChanged {
		t.Fatalf("token risk: said %q, kept %q (%v)", s.Risk, got.Risk, err)
	}
	evs, _ := st.Events(ctx(t), uid, time.Time{}, 0)
	for _, e := range evs {
		if e.Type == session.EventRisk {
			t.Fatalf("risk event at a token's creation: %+v", e)
		}
	}
	c.Advance(time.Hour)
	if _, b := signInAt(t, st, c, uid, "d1", newYork); !session.HasFlag(b.Risk, session.FlagNewCountry) {
		t.Fatalf("the token's country was remembered: a sign-in from there is flagged %q", b.Risk)
	}
}

func testFields(t *testing.T, st session.Store, c *Clock) {
	uid := user()
	id, _, hash, _ := st.NewCredential(ctx(t), uid)
	now := c.Now()
	in := &session.Session{ID: id, UserID: uid, TokenHash: hash, Email: "ä@example.com", Name: "Zoë",
		Roles: "admin,dev", IP: "2001:db8::1", LoginIP: "2001:db8::1", UserAgent: "Mozilla/5.0",
		Device: "Mac", DeviceType: "desktop", Browser: "Firefox", OS: "macOS", Country: "DE", City: "Berlin",
		Lat: 52.52, Lon: -13.405, HasCoord: true, LoginCountry: "DE",
		DeviceID: "dev1", Risk: "new-device", CreatedAt: now, LastActiveAt: now,
		Kind: session.KindBrowser, AuthMethod: session.MethodOIDC("corp"), AuthenticatedAt: now.Add(90 * time.Second).UTC(),
		Parent:   strings.Repeat("ab", 16),
		StepUpIP: "2001:db8::2", StepUpCountry: "FR",
		Provider: "corp", Subject: "248289761001", ProviderSID: "08a5019c-17e1-4977-8f42-65a12843ea02",
		SealedTokens: strings.Repeat("sealed-tokens/", 200), CheckedAt: now.Add(2 * time.Minute).UTC(),
		Site: "app.example.com:8443"}
	if _, err := st.Create(ctx(t), in, policy, session.Limit{}); err != nil {
		t.Fatal(err)
	}
	got, err := st.Get(ctx(t), id)
	if err != nil {
		t.Fatal(err)
	}
	in.CreatedAt, in.LastActiveAt = in.CreatedAt.UTC(), in.LastActiveAt.UTC()
	if fmt.Sprintf("%+v", *got) != fmt.Sprintf("%+v", *in) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", *got, *in)
	}
}

// testRetention runs on the real clock: an ended session is listed until
// retention has passed, then forgotten (by TTL in Redis).
func testRetention(t *testing.T, st session.Store) {
	p := policy
	p.Retention = 300 * time.Millisecond
	uid := user()
	id, _, hash, _ := st.NewCredential(ctx(t), uid)
	now := time.Now()
	if _, err := st.Create(ctx(t), &session.Session{ID: id, UserID: uid, TokenHash: hash, CreatedAt: now, LastActiveAt: now}, p, session.Limit{}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.End(ctx(t), id, time.Now(), session.EndLogout, session.ActorSelf, p); err != nil {
		t.Fatal(err)
	}
	if l, _ := st.List(ctx(t), uid, time.Now(), p); len(l) != 1 {
		t.Fatalf("ended session not kept: %v", l)
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		l, err := st.List(ctx(t), uid, time.Now(), p)
		if err != nil {
			t.Fatal(err)
		}
		if len(l) == 0 {
			if _, err := st.Get(ctx(t), id); !errors.Is(err, session.ErrNotFound) {
				t.Fatalf("get after retention: %v", err)
			}
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("ended session still listed after retention")
}

// Sign-ins in the same millisecond are still ordered: the limit ends the
// first one, never a random one.
func testSameMillisecond(t *testing.T, st session.Store, c *Clock) {
	uid := user()
	lim := session.Limit{Max: 2, Mode: session.LimitOldest}
	var creds []cred
	for i := 0; i < 3; i++ {
		cr, _, err := mint(t, st, c, uid, "192.0.2.1", lim)
		if err != nil {
			t.Fatal(err)
		}
		creds = append(creds, cr)
	}
	wantStatus(t, validate(t, st, c, creds[0], "192.0.2.1"), session.Ended)
	c.Advance(time.Second)
	wantStatus(t, validate(t, st, c, creds[1], "192.0.2.1"), session.Valid)
	wantStatus(t, validate(t, st, c, creds[2], "192.0.2.1"), session.Valid)
	list, _ := st.List(ctx(t), uid, c.Now(), policy)
	seen := map[time.Time]bool{}
	for _, s := range list {
		if seen[s.CreatedAt] {
			t.Fatalf("two sessions created at %v", s.CreatedAt)
		}
		seen[s.CreatedAt] = true
	}
}

// place is a sign-in location for the risk tests.
type place struct {
	country  string
	lat, lon float64
}

var (
	berlin  = place{"DE", 52.52, 13.405}
	munich  = place{"DE", 48.137, 11.575}
	newYork = place{"US", 40.7128, -74.006}
)

func signInAt(t *testing.T, st session.Store, c *Clock, uid, device string, pl place) (cred, *session.Session) {
	t.Helper()
	id, _, hash, _ := st.NewCredential(ctx(t), uid)
	now := c.Now()
	s := &session.Session{ID: id, UserID: uid, TokenHash: hash, IP: "192.0.2.1", LoginIP: "192.0.2.1",
		DeviceID: device, Country: pl.country, LoginCountry: pl.country, Lat: pl.lat, Lon: pl.lon, HasCoord: pl.country != "",
		CreatedAt: now, LastActiveAt: now}
	if _, err := st.Create(ctx(t), s, policy, session.Limit{}); err != nil {
		t.Fatal(err)
	}
	got, err := st.Get(ctx(t), id)
	if err != nil {
		t.Fatal(err)
	}
	if got.Risk != s.Risk {
		t.Fatalf("Create said risk %q, the store kept %q", s.Risk, got.Risk)
	}
	return cred{id, hash}, s
}

func testRiskNew(t *testing.T, st session.Store, c *Clock) {
	uid := user()
	if _, s := signInAt(t, st, c, uid, "d1", berlin); s.Risk != "" {
		t.Fatalf("first sign-in (baseline) flagged %q", s.Risk)
	}
	c.Advance(time.Hour)
	if _, s := signInAt(t, st, c, uid, "d1", munich); s.Risk != "" {
		t.Fatalf("known device and country flagged %q", s.Risk)
	}
	c.Advance(time.Hour)
	if _, s := signInAt(t, st, c, uid, "d2", berlin); s.Risk != session.FlagNewDevice {
		t.Fatalf("new device: %q", s.Risk)
	}
	c.Advance(24 * time.Hour) // earlier sessions idle out; a later one stays active
	_, keep := signInAt(t, st, c, uid, "d2", berlin)
	if keep.Risk != "" {
		t.Fatalf("known again: %q", keep.Risk)
	}
	c.Advance(20 * time.Hour)
	cr, s := signInAt(t, st, c, uid, "d3", newYork)
	if s.Risk != "new-device,new-country" {
		t.Fatalf("new device and country, no concurrency (Berlin session idled out): %q", s.Risk)
	}
	c.Advance(time.Minute)
	validate(t, st, c, cr, "192.0.2.1")
	_, s = signInAt(t, st, c, uid, "d1", berlin)
	if !session.HasFlag(s.Risk, session.FlagConcurrentCountries) || session.HasFlag(s.Risk, session.FlagNewDevice) {
		t.Fatalf("concurrent countries (US active, now DE): %q", s.Risk)
	}
	evs, _ := st.Events(ctx(t), uid, time.Time{}, 0)
	var risk []string
	for _, e := range evs {
		if e.Type == session.EventRisk {
			risk = append(risk, e.Reason)
		}
	}
	// The last sign-in came a minute after New York: also impossible travel.
	if fmt.Sprint(risk) != "[concurrent-countries impossible-travel new-country new-device new-device]" {
		t.Fatalf("risk events %v", risk)
	}
}

func testTravelSignIn(t *testing.T, st session.Store, c *Clock) {
	fast, slow := user(), user()
	signInAt(t, st, c, fast, "d1", berlin)
	signInAt(t, st, c, slow, "d1", berlin)
	c.Advance(10 * time.Minute)
	if _, s := signInAt(t, st, c, fast, "d1", newYork); !session.HasFlag(s.Risk, session.FlagImpossibleTravel) {
		t.Fatalf("Berlin to New York in 10 minutes: %q", s.Risk)
	}
	c.Advance(10 * time.Hour) // 6,385 km in 10 h: a flight
	if _, s := signInAt(t, st, c, slow, "d1", newYork); session.HasFlag(s.Risk, session.FlagImpossibleTravel) {
		t.Fatalf("Berlin to New York in 10 hours: %q", s.Risk)
	}
	// No coordinates: nothing to compare.
	if _, s := signInAt(t, st, c, slow, "d1", place{}); session.HasFlag(s.Risk, session.FlagImpossibleTravel) {
		t.Fatalf("unlocated sign-in: %q", s.Risk)
	}
}

func testRiskRetention(t *testing.T, st session.Store, c *Clock) {
	uid := user()
	signInAt(t, st, c, uid, "d1", berlin)
	c.Advance(policy.Retention + time.Hour)
	if _, s := signInAt(t, st, c, uid, "d2", newYork); s.Risk != "" {
		t.Fatalf("after retention the next sign-in is a new baseline: %q", s.Risk)
	}
}

func testSight(t *testing.T, st session.Store, c *Clock) {
	uid := user()
	cr, _ := signInAt(t, st, c, uid, "d1", berlin)
	c.Advance(time.Minute)
	s, err := st.Sight(ctx(t), cr.id, session.Sighting{IP: "192.0.2.77", Country: "DE", City: "Munich", Lat: munich.lat, Lon: munich.lon, HasCoord: true}, c.Now(), policy)
	if err != nil {
		t.Fatal(err)
	}
	if s.City != "Munich" || s.IP != "192.0.2.77" || s.LoginCountry != "DE" || !session.HasFlag(s.Risk, session.FlagImpossibleTravel) {
		t.Fatalf("504 km in a minute: %+v", s)
	}
	c.Advance(50 * time.Minute)
	s, err = st.Sight(ctx(t), cr.id, session.Sighting{IP: "203.0.113.9", Country: "US", City: "New York", Lat: newYork.lat, Lon: newYork.lon, HasCoord: true}, c.Now(), policy)
	if err != nil || s.Country != "US" || s.Risk != session.FlagImpossibleTravel {
		t.Fatalf("to New York (flag already raised, not twice): %+v %v", s, err)
	}
	s, err = st.Sight(ctx(t), cr.id, session.Sighting{IP: "10.0.0.1"}, c.Now(), policy)
	if err != nil || s.Country != "" || s.City != "" || s.HasCoord || s.IP != "10.0.0.1" {
		t.Fatalf("unlocated sighting keeps an old location: %+v %v", s, err)
	}
	if got, _ := st.Get(ctx(t), cr.id); got.Country != "" || got.HasCoord || got.Risk != session.FlagImpossibleTravel ||
		got.LoginCountry != "DE" || got.LoginIP != "192.0.2.1" {
		t.Fatalf("stored after sightings: %+v", got)
	}
	evs, _ := st.Events(ctx(t), uid, time.Time{}, 0)
	var kinds []string
	for _, e := range evs {
		kinds = append(kinds, e.Type+":"+e.Country+":"+e.Reason)
	}
	want := "[ip_change:: country_change:US: ip_change:US: risk:DE:impossible-travel ip_change:DE: login:DE:]"
	if fmt.Sprint(kinds) != want {
		t.Fatalf("events\n got %v\nwant %s", kinds, want)
	}
	// The sign-in is told as it was, whatever the session saw later.
	if login := evs[len(evs)-1]; login.IP != "192.0.2.1" || login.City != "" || login.SessionID != cr.id ||
		login.DeviceID != "d1" || login.UserID != uid {
		t.Fatalf("the login event after sightings: %+v", login)
	}
	if _, err := st.End(ctx(t), cr.id, c.Now(), session.EndLogout, session.ActorSelf, policy); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Sight(ctx(t), cr.id, session.Sighting{IP: "192.0.2.1"}, c.Now(), policy); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("sighting of an ended session: %v", err)
	}
	// A city known at sign-in stays the login event's city.
	id3, _, h3, _ := st.NewCredential(ctx(t), uid)
	s3 := &session.Session{ID: id3, UserID: uid, TokenHash: h3, IP: "192.0.2.5", LoginIP: "192.0.2.5", Country: "DE",
		LoginCountry: "DE", City: "Hamburg", CreatedAt: c.Now(), LastActiveAt: c.Now()}
	if _, err := st.Create(ctx(t), s3, policy, session.Limit{}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Sight(ctx(t), id3, session.Sighting{IP: "192.0.2.6", Country: "DE", City: "Munich"}, c.Now(), policy); err != nil {
		t.Fatal(err)
	}
	evs, _ = st.Events(ctx(t), uid, time.Time{}, 0)
	for _, e := range evs {
		if e.Type == session.EventLogin && e.SessionID == id3 && (e.City != "Hamburg" || e.IP != "192.0.2.5") {
			t.Fatalf("login event of a session that moved within its country: %+v", e)
		}
	}
	// A session signed in from nowhere known keeps that as its login
	// country when it is later located.
	cr2, _ := signInAt(t, st, c, uid, "d1", place{})
	if s, err := st.Sight(ctx(t), cr2.id, session.Sighting{IP: "192.0.2.78", Country: "DE", City: "Berlin"}, c.Now(), policy); err != nil ||
		s.LoginCountry != "" || s.Country != "DE" || s.LoginIP != "192.0.2.1" {
		t.Fatalf("located later: %+v %v", s, err)
	}
}

// A step-up keeps the session (id, secret, creation) and moves when the
// user last proved who they are; it clears the flags kept on the session
// and measures ip-changed and country-changed from where it happened; it
// writes a step_up event naming the method. Only an active session steps
// up.
func testStepUp(t *testing.T, st session.Store, c *Clock) {
	uid := user()
	signInAt(t, st, c, uid, "d1", berlin)
	c.Advance(time.Minute)
	cr, s0 := signInAt(t, st, c, uid, "d2", berlin)
	if s0.Risk != session.FlagNewDevice {
		t.Fatalf("second device: %q", s0.Risk)
	}
	c.Advance(time.Minute)
	if _, err := st.Sight(ctx(t), cr.id, session.Sighting{IP: "203.0.113.9", Country: "US", City: "New York"}, c.Now(), policy); err != nil {
		t.Fatal(err)
	}
	c.Advance(10 * time.Minute)
	at := c.Now()
	s, err := st.StepUp(ctx(t), cr.id, session.Proof{At: at, Method: session.MethodPasswordTOTP}, policy)
	if err != nil {
		t.Fatal(err)
	}
	if s.ID != cr.id || s.TokenHash != cr.hash || !s.CreatedAt.Equal(s0.CreatedAt) || !s.AuthenticatedAt.Equal(at) ||
		s.Risk != "" || s.StepUpIP != "203.0.113.9" || s.StepUpCountry != "US" ||
		s.LoginIP != "192.0.2.1" || s.LoginCountry != "DE" || s.IP != "203.0.113.9" || s.Country != "US" {
		t.Fatalf("after the step-up: %+v", s)
	}
	if ip, country := s.RiskBaseline(); ip != "203.0.113.9" || country != "US" {
		t.Fatalf("risk baseline %s %s", ip, country)
	}
	got, err := st.Get(ctx(t), cr.id)
	if err != nil || fmt.Sprintf("%+v", *got) != fmt.Sprintf("%+v", *s) {
		t.Fatalf("stored:\n got %+v %v\nwant %+v", got, err, s)
	}
	c.Advance(time.Minute)
	v := validate(t, st, c, cr, "203.0.113.9")
	wantStatus(t, v, session.Valid)
	if !v.Session.AuthenticatedOrCreated().Equal(at) || v.Session.Risk != "" {
		t.Fatalf("validated after the step-up: %+v", v.Session)
	}
	evs, _ := st.Events(ctx(t), uid, time.Time{}, 0)
	var found *session.Event
	for i, e := range evs {
		if e.Type == session.EventStepUp {
			if found != nil {
				t.Fatalf("two step_up events: %+v", evs)
			}
			found = &evs[i]
		}
	}
	if found == nil || found.SessionID != cr.id || found.UserID != uid || !found.At.Equal(at) ||
		found.Reason != session.MethodPasswordTOTP || found.IP != "203.0.113.9" || found.Country != "US" || found.DeviceID != "d2" {
		t.Fatalf("step_up event %+v in %+v", found, evs)
	}
	if evs[0].Type != session.EventStepUp {
		t.Fatalf("newest event %+v, want the step-up", evs[0])
	}

	// A provider's step-up: its new sid replaces the old (an empty one
	// keeps it); when the provider last vouched is recheck's (CheckedAt).
	id2, _, h2, _ := st.NewCredential(ctx(t), uid)
	checked := c.Now()
	o := &session.Session{ID: id2, UserID: uid, TokenHash: h2, IP: "192.0.2.1", LoginIP: "192.0.2.1", AuthMethod: session.MethodOIDC("corp"),
		Provider: "corp", Subject: "sub-1", ProviderSID: "sid-1", CheckedAt: checked, CreatedAt: c.Now(), LastActiveAt: c.Now()}
	if _, err := st.Create(ctx(t), o, policy, session.Limit{}); err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Minute)
	if s, err := st.StepUp(ctx(t), id2, session.Proof{At: c.Now(), Method: o.AuthMethod, ProviderSID: "sid-2"}, policy); err != nil ||
		s.ProviderSID != "sid-2" || !s.CheckedAt.Equal(checked) || s.Subject != "sub-1" {
		t.Fatalf("a provider's step-up: %+v %v", s, err)
	}
	c.Advance(time.Minute)
	s2, err := st.StepUp(ctx(t), id2, session.Proof{At: c.Now(), Method: o.AuthMethod}, policy)
	if got, _ := st.Get(ctx(t), id2); err != nil || s2.ProviderSID != "sid-2" || fmt.Sprintf("%+v", *got) != fmt.Sprintf("%+v", *s2) {
		t.Fatalf("a provider's step-up without a sid: %+v %v, stored %+v", s2, err, got)
	}

	// A step-up at the very instant of the sign-in reads as the sign-in.
	fresh, _ := signInAt(t, st, c, uid, "d1", berlin)
	if s, err := st.StepUp(ctx(t), fresh.id, session.Proof{At: c.Now(), Method: session.MethodPassword}, policy); err != nil ||
		!s.AuthenticatedAt.IsZero() || !s.AuthenticatedOrCreated().Equal(c.Now()) {
		t.Fatalf("step-up at creation: %+v %v", s, err)
	}

	// Only an active session steps up.
	if _, err := st.End(ctx(t), fresh.id, c.Now(), session.EndLogout, session.ActorSelf, policy); err != nil {
		t.Fatal(err)
	}
	for name, id := range map[string]string{"ended": fresh.id, "unknown": "0123456789abcdef0123456789abcdef"} {
		if _, err := st.StepUp(ctx(t), id, session.Proof{At: c.Now(), Method: session.MethodPassword}, policy); !errors.Is(err, session.ErrNotFound) {
			t.Fatalf("%s session: %v", name, err)
		}
	}
	c.Advance(policy.IdleTimeout + time.Minute)
	if _, err := st.StepUp(ctx(t), cr.id, session.Proof{At: c.Now(), Method: session.MethodPassword}, policy); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("idle session: %v", err)
	}
}

func testHit(t *testing.T, st session.Store, c *Clock) {
	key := "ip:" + user()
	for want := int64(1); want <= 3; want++ {
		n, left, err := st.Hit(ctx(t), key, time.Minute, c.Now())
		if err != nil || n != want || left <= 0 || left > time.Minute {
			t.Fatalf("hit %d: %d %v %v", want, n, left, err)
		}
	}
	if n, _, _ := st.Hit(ctx(t), "ip:"+user(), time.Minute, c.Now()); n != 1 {
		t.Fatalf("another key shares the count: %d", n)
	}
}

func testRefund(t *testing.T, st session.Store, c *Clock) {
	key := "proof:" + user()
	if err := st.Refund(ctx(t), key, c.Now()); err != nil {
		t.Fatalf("refund of nothing: %v", err)
	}
	for range 3 {
		if _, _, err := st.Hit(ctx(t), key, time.Minute, c.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Refund(ctx(t), key, c.Now()); err != nil {
		t.Fatal(err)
	}
	if n, left, err := st.Hit(ctx(t), key, time.Minute, c.Now()); err != nil || n != 3 || left <= 0 || left > time.Minute {
		t.Fatalf("after a refund: %d %v %v, want 3 in the same window", n, left, err)
	}
	for range 5 {
		if err := st.Refund(ctx(t), key, c.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if n, _, err := st.Hit(ctx(t), key, time.Minute, c.Now()); err != nil || n != 1 {
		t.Fatalf("refunds past zero: the next hit counts %d %v, want 1", n, err)
	}
	other := "proof:" + user()
	if err := st.Refund(ctx(t), other, c.Now()); err != nil {
		t.Fatal(err)
	}
	if n, _, _ := st.Hit(ctx(t), other, time.Minute, c.Now()); n != 1 {
		t.Fatalf("a refund before any hit: the first hit counts %d", n)
	}
}

func testRecord(t *testing.T, st session.Store, c *Clock) {
	uid := user()
	e := session.Event{Type: session.EventRateLimited, At: c.Now(), UserID: uid, IP: "192.0.2.9", Reason: "login"}
	if err := st.Record(ctx(t), e, policy); err != nil {
		t.Fatal(err)
	}
	if err := st.Record(ctx(t), session.Event{Type: session.EventRateLimited, At: c.Now(), IP: "192.0.2.9", Reason: "guess"}, policy); err != nil {
		t.Fatal(err)
	}
	evs, err := st.Events(ctx(t), uid, time.Time{}, 0)
	if err != nil || len(evs) != 1 || evs[0].Type != session.EventRateLimited || evs[0].Reason != "login" || evs[0].IP != "192.0.2.9" {
		t.Fatalf("recorded: %+v %v", evs, err)
	}
}

func testUsers(t *testing.T, st session.Store, c *Clock) {
	a, b := "list/"+user(), user()+"{odd}:u:name"
	mustMint(t, st, c, a)
	mustMint(t, st, c, b)
	users, err := st.Users(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, u := range users {
		found[u] = true
	}
	if !found[a] || !found[b] {
		t.Fatalf("users %v lack %q or %q", users, a, b)
	}
}

const (
	hookA    = "https://hooks.example/a"
	hookFull = "https://hooks.example/full"
)

func testOutbox(t *testing.T, st session.Store, c *Clock) {
	n := session.Notice{Event: "new_login", At: c.Now().UTC(), UserID: user(), SessionID: "s1"}
	if err := st.Enqueue(ctx(t), hookA, n); err != nil {
		t.Fatal(err)
	}
	got, err := st.Claim(ctx(t), "g1", hookA, 10, time.Second)
	if err != nil || len(got) != 1 || got[0].Target != hookA || got[0].Notice.UserID != n.UserID || got[0].Attempt != 0 {
		t.Fatalf("claim: %+v %v", got, err)
	}
	// Claimed by g1: nobody else gets it.
	if other, _ := st.Claim(ctx(t), "g2", hookA, 10, 50*time.Millisecond); len(other) != 0 {
		t.Fatalf("claimed twice: %+v", other)
	}
	// A retry due now comes back with its attempt counted; one due later does not.
	if err := st.Retry(ctx(t), got[0], c.Now()); err != nil {
		t.Fatal(err)
	}
	again, err := st.Claim(ctx(t), "g2", hookA, 10, time.Second)
	if err != nil || len(again) != 1 || again[0].Attempt != 1 {
		t.Fatalf("retry: %+v %v", again, err)
	}
	if err := st.Retry(ctx(t), again[0], c.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if later, _ := st.Claim(ctx(t), "g1", hookA, 10, 50*time.Millisecond); len(later) != 0 {
		t.Fatalf("a retry due in an hour came back: %+v", later)
	}
	c.Advance(time.Hour)
	last, err := st.Claim(ctx(t), "g1", hookA, 10, time.Second)
	if err != nil || len(last) != 1 || last[0].Attempt != 2 {
		t.Fatalf("due retry: %+v %v", last, err)
	}
	if err := st.Ack(ctx(t), last[0]); err != nil {
		t.Fatal(err)
	}
	if none, _ := st.Claim(ctx(t), "g1", hookA, 10, 50*time.Millisecond); len(none) != 0 {
		t.Fatalf("acked notice came back: %+v", none)
	}
}

// A full outbox refuses the new notice and keeps every queued one.
func testOutboxFull(t *testing.T, st session.Store, c *Clock) {
	prev := session.OutboxCap
	session.OutboxCap = 5
	defer func() { session.OutboxCap = prev }()
	// The channel may be shared with other cases: empty it first.
	for {
		ds, err := st.Claim(ctx(t), "drain", hookFull, 100, 10*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) == 0 {
			break
		}
		for _, d := range ds {
			_ = st.Ack(ctx(t), d)
		}
	}
	full := 0
	for i := 0; i < 8; i++ {
		n := session.Notice{Event: "new_login", At: c.Now().UTC(), UserID: user(), SessionID: fmt.Sprint(i)}
		switch err := st.Enqueue(ctx(t), hookFull, n); {
		case errors.Is(err, session.ErrOutboxFull):
			full++
		case err != nil:
			t.Fatal(err)
		}
	}
	got, err := st.Claim(ctx(t), "g1", hookFull, 100, time.Second)
	if err != nil || full != 3 || len(got) != 5 {
		t.Fatalf("8 notices into an outbox of 5: %d refused, %d queued (%v)", full, len(got), err)
	}
	for i, d := range got {
		if d.Notice.SessionID != fmt.Sprint(i) {
			t.Fatalf("queued %s at %d: a queued notice gave way", d.Notice.SessionID, i)
		}
		_ = st.Ack(ctx(t), d)
	}
}

// Each target is a channel of its own: a full channel refuses nothing to
// another, a claim of one returns none of another's, and Targets names
// the channels that hold notices.
func testOutboxChannels(t *testing.T, st session.Store, c *Clock) {
	prev := session.OutboxCap
	session.OutboxCap = 3
	defer func() { session.OutboxCap = prev }()
	dead, live := "https://dead.example/"+user(), "email-"+user()
	for i := 0; i < 5; i++ {
		n := session.Notice{Event: "new_login", At: c.Now().UTC(), UserID: user(), SessionID: fmt.Sprint(i)}
		err := st.Enqueue(ctx(t), dead, n)
		if i >= 3 && !errors.Is(err, session.ErrOutboxFull) || i < 3 && err != nil {
			t.Fatalf("notice %d to the full channel: %v", i, err)
		}
	}
	for i := 0; i < 3; i++ {
		n := session.Notice{Event: "new_login", At: c.Now().UTC(), UserID: user(), SessionID: fmt.Sprint(i)}
		if err := st.Enqueue(ctx(t), live, n); err != nil {
			t.Fatalf("notice %d beside a full channel: %v", i, err)
		}
	}
	targets, err := st.Targets(ctx(t))
	if err != nil || !slices.Contains(targets, dead) || !slices.Contains(targets, live) {
		t.Fatalf("targets %v (%v): want %s and %s", targets, err, dead, live)
	}
	got, err := st.Claim(ctx(t), "g1", live, 10, time.Second)
	if err != nil || len(got) != 3 {
		t.Fatalf("claim of the live channel: %+v %v", got, err)
	}
	for _, d := range got {
		if d.Target != live {
			t.Fatalf("a claim of %s returned one of %s", live, d.Target)
		}
		if err := st.Ack(ctx(t), d); err != nil {
			t.Fatal(err)
		}
	}
	// The dead channel's notices wait, each a retry an hour off.
	held, err := st.Claim(ctx(t), "g1", dead, 10, time.Second)
	if err != nil || len(held) != 3 {
		t.Fatalf("claim of the full channel: %+v %v", held, err)
	}
	for _, d := range held {
		if err := st.Retry(ctx(t), d, c.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	if targets, _ = st.Targets(ctx(t)); slices.Contains(targets, live) || !slices.Contains(targets, dead) {
		t.Fatalf("targets %v: want %s (its notices wait for a retry) and not the emptied %s", targets, dead, live)
	}
	if err := st.Enqueue(ctx(t), dead, session.Notice{Event: "new_login", At: c.Now().UTC()}); !errors.Is(err, session.ErrOutboxFull) {
		t.Fatalf("a notice past the cap of a channel whose notices wait for a retry: %v", err)
	}
}

func testOthersActive(t *testing.T, st session.Store, c *Clock) {
	uid := user()
	counts := []int{}
	for i := 0; i < 3; i++ {
		id, _, hash, _ := st.NewCredential(ctx(t), uid)
		now := c.Now()
		s := &session.Session{ID: id, UserID: uid, TokenHash: hash, CreatedAt: now, LastActiveAt: now}
		if _, err := st.Create(ctx(t), s, policy, session.Limit{Max: 2, Mode: session.LimitOldest}); err != nil {
			t.Fatal(err)
		}
		counts = append(counts, s.OthersActive)
	}
	if fmt.Sprint(counts) != "[0 1 1]" { // the third sign-in ended the first
		t.Fatalf("others active at each sign-in: %v", counts)
	}
}

func testByIP(t *testing.T, st session.Store, c *Clock) {
	// Addresses of 198.18.0.0/15, which no other case uses: the cases
	// share a store, and a case that sees another's sessions fails.
	n := time.Now().UnixNano() % 30000
	ip := fmt.Sprintf("198.18.%d.%d", n/120, n%120+1)
	movedTo := fmt.Sprintf("198.19.%d.%d", n/120, n%120+1)
	a, _, err := mint(t, st, c, user(), ip, session.Limit{})
	if err != nil {
		t.Fatal(err)
	}
	b, _, _ := mint(t, st, c, user(), ip, session.Limit{})
	mustMint(t, st, c, user()) // elsewhere
	c.Advance(time.Minute)
	// b moves away; a signs out.
	if _, err := st.Sight(ctx(t), b.id, session.Sighting{IP: movedTo}, c.Now(), policy); err != nil {
		t.Fatal(err)
	}
	got, next, err := st.ByIP(ctx(t), ip, c.Now(), policy, "", 100)
	if err != nil || len(got) != 1 || got[0].ID != a.id || next != "" {
		t.Fatalf("by IP: %v %v", got, err)
	}
	if moved, _, _ := st.ByIP(ctx(t), movedTo, c.Now(), policy, "", 100); len(moved) != 1 || moved[0].ID != b.id {
		t.Fatalf("by the new IP: %v", moved)
	}
	if _, err := st.End(ctx(t), a.id, c.Now(), session.EndLogout, session.ActorSelf, policy); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := st.ByIP(ctx(t), ip, c.Now(), policy, "", 100); len(got) != 0 {
		t.Fatalf("ended session listed by IP: %v", got)
	}
}

// ByIP answers a page at a time; following the positions lists every
// active session from the address once, and a made-up position is refused.
func testByIPPages(t *testing.T, st session.Store, c *Clock) {
	ip := "2001:db8::" + fmt.Sprint(time.Now().UnixNano()%9000+1000)
	want := map[string]bool{}
	for i := 0; i < 23; i++ {
		cr, _, err := mint(t, st, c, user(), ip, session.Limit{})
		if err != nil {
			t.Fatal(err)
		}
		want[cr.id] = true
		if i%3 == 0 { // some in the same millisecond
			c.Advance(time.Millisecond)
		}
	}
	ended, _, _ := mint(t, st, c, user(), ip, session.Limit{})
	if _, err := st.End(ctx(t), ended.id, c.Now(), session.EndLogout, session.ActorSelf, policy); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	after, pages := "", 0
	for {
		page, next, err := st.ByIP(ctx(t), ip, c.Now(), policy, after, 5)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if len(page) > 5 || (next != "" && len(page) != 5) {
			t.Fatalf("page %d: %d sessions, next %q", pages, len(page), next)
		}
		for _, s := range page {
			if seen[s.ID] || !want[s.ID] {
				t.Fatalf("page %d: session %s listed twice or not from %s", pages, s.ID, ip)
			}
			seen[s.ID] = true
		}
		if next == "" {
			break
		}
		after = next
	}
	if len(seen) != len(want) || pages != 5 {
		t.Fatalf("%d sessions in %d pages, want %d in 5", len(seen), pages, len(want))
	}
	for _, bad := range []string{"x", "1:zz", "nonsense:" + ended.id} {
		if _, _, err := st.ByIP(ctx(t), ip, c.Now(), policy, bad, 5); !errors.Is(err, session.ErrBadCursor) {
			t.Fatalf("position %q: %v", bad, err)
		}
	}
}

// testUnlisted: a session that its user's index no longer lists is not
// valid (revoking the user's sessions could not reach it), and stays so
// when a new sign-in makes a new index; the new session is valid and
// revocable as any.
func testUnlisted(t *testing.T, st session.Store, c *Clock, drop func(t *testing.T, st session.Store, user string)) {
	uid := user()
	a, b := mustMint(t, st, c, uid), mustMint(t, st, c, uid)
	other := mustMint(t, st, c, user())
	wantStatus(t, validate(t, st, c, a, "192.0.2.1"), session.Valid)
	drop(t, st, uid)
	for _, cr := range []cred{a, b} {
		v := validate(t, st, c, cr, "192.0.2.1")
		wantStatus(t, v, session.Unlisted)
		if v.Session.ID != cr.id || v.Session.UserID != uid || v.Touched {
			t.Fatalf("unlisted: %+v touched=%v", v.Session, v.Touched)
		}
	}
	bad := a
	bad.hash[0] ^= 1
	wantStatus(t, validate(t, st, c, bad, "192.0.2.1"), session.Unknown)
	wantStatus(t, validate(t, st, c, other, "192.0.2.1"), session.Valid)

	c.Advance(policy.TouchInterval) // a touch is due: still refused, nothing written
	n := mustMint(t, st, c, uid)
	wantStatus(t, validate(t, st, c, n, "192.0.2.1"), session.Valid)
	wantStatus(t, validate(t, st, c, a, "198.51.100.1"), session.Unlisted)
	if got, err := st.Get(ctx(t), a.id); err != nil || got.IP != "192.0.2.1" || got.LastActiveAt.Equal(c.Now()) {
		t.Fatalf("an unlisted session was written: %+v %v", got, err)
	}
	ended, err := st.EndUser(ctx(t), uid, "", c.Now(), session.EndRevoked, session.ActorAdmin, policy)
	if err != nil || len(ended) != 1 || ended[0].ID != n.id {
		t.Fatalf("end all after the index was lost: %v %v", ended, err)
	}
	wantStatus(t, validate(t, st, c, n, "192.0.2.1"), session.Ended)
	wantStatus(t, validate(t, st, c, a, "192.0.2.1"), session.Unlisted)
	wantStatus(t, validate(t, st, c, b, "192.0.2.1"), session.Unlisted)
}

func testStashTake(t *testing.T, st session.Store, c *Clock) {
	key := "pending:" + user()
	if err := st.Stash(ctx(t), key, []byte("state\x00nonce"), 10*time.Minute, c.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Take(ctx(t), "pending:"+user(), c.Now()); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("another key: %v", err)
	}
	v, err := st.Take(ctx(t), key, c.Now())
	if err != nil || string(v) != "state\x00nonce" {
		t.Fatalf("take: %q %v", v, err)
	}
	if _, err := st.Take(ctx(t), key, c.Now()); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("taken twice: %v", err)
	}

	// Concurrent takes: exactly one wins.
	if err := st.Stash(ctx(t), key, []byte("once"), time.Minute, c.Now()); err != nil {
		t.Fatal(err)
	}
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := st.Take(ctx(t), key, c.Now()); err == nil {
				wins.Add(1)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d concurrent takes got the record", wins.Load())
	}
}

func testLinks(t *testing.T, st session.Store, c *Clock) {
	key := "idp:corp:sub:" + user()
	got := func(at time.Time) []string {
		t.Helper()
		m, err := st.Linked(ctx(t), key, at)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	if m := got(c.Now()); len(m) != 0 {
		t.Fatalf("a set never linked has members: %q", m)
	}
	now := c.Now()
	if err := st.Link(ctx(t), key, "bob@example.com", time.Hour, now); err != nil {
		t.Fatal(err)
	}
	if err := st.Link(ctx(t), key, "alice@example.com", 10*time.Minute, now); err != nil {
		t.Fatal(err)
	}
	// Linking again never shortens a member's time.
	if err := st.Link(ctx(t), key, "bob@example.com", time.Minute, now); err != nil {
		t.Fatal(err)
	}
	if m := got(now); !slices.Equal(m, []string{"alice@example.com", "bob@example.com"}) {
		t.Fatalf("members: %q", m)
	}
	if m := got(now.Add(30 * time.Minute)); !slices.Equal(m, []string{"bob@example.com"}) {
		t.Fatalf("members after alice's time: %q", m)
	}
	if m, _ := st.Linked(ctx(t), "idp:corp:sub:"+user(), now); len(m) != 0 {
		t.Fatalf("another key has members: %q", m)
	}

	// Past the cap, the members that expire first go.
	key = "idp:corp:sub:" + user()
	for i := range 20 {
		if err := st.Link(ctx(t), key, fmt.Sprintf("u%02d", i), time.Duration(i+1)*time.Minute, now); err != nil {
			t.Fatal(err)
		}
	}
	m := got(now)
	if len(m) != 16 || m[0] != "u04" || m[15] != "u19" {
		t.Fatalf("capped set: %q", m)
	}
}

// StashExpires is run by stores whose clock the suite controls (memory,
// file); Redis expires records by its own clock, which its test checks.
func StashExpires(t *testing.T, st session.Store, c *Clock) {
	key := "pending:" + user()
	if err := st.Stash(ctx(t), key, []byte("x"), time.Minute, c.Now()); err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Minute)
	if _, err := st.Take(ctx(t), key, c.Now()); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("taken after its TTL: %v", err)
	}
}

// mintOIDC stores a session signed in at a provider, with sealed tokens
// and the time the provider last vouched for the user.
func mintOIDC(t *testing.T, st session.Store, c *Clock, uid, sealed string) *session.Session {
	t.Helper()
	s := newSession(t, st, c, uid)
	s.AuthMethod, s.Provider, s.Subject, s.SealedTokens, s.CheckedAt = session.MethodOIDC("corp"), "corp", "sub-1", sealed, s.CreatedAt
	if _, err := st.Create(ctx(t), s, policy, session.Limit{}); err != nil {
		t.Fatal(err)
	}
	return s
}

// MarkChecked moves CheckedAt only from the value read, replaces the
// sealed tokens with it (shorter or longer than before: no chunk of the
// old text survives), and refuses ended and unknown sessions.
func testMarkChecked(t *testing.T, st session.Store, c *Clock) {
	long := strings.Repeat("old-sealed/", 40)
	s := mintOIDC(t, st, c, user(), long)
	was := s.CheckedAt
	c.Advance(time.Minute)
	claim := c.Now()
	if won, err := st.MarkChecked(ctx(t), s.ID, was, claim, ""); err != nil || !won {
		t.Fatalf("claim: %v %v", won, err)
	}
	got, err := st.Get(ctx(t), s.ID)
	if err != nil || !got.CheckedAt.Equal(claim) || got.SealedTokens != long {
		t.Fatalf("after the claim: %v %v tokens kept=%v", err, got.CheckedAt, got.SealedTokens == long)
	}
	// A second claim from the value first read loses.
	if won, err := st.MarkChecked(ctx(t), s.ID, was, claim.Add(time.Second), ""); err != nil || won {
		t.Fatalf("stale claim: %v %v", won, err)
	}
	c.Advance(2 * time.Second)
	done := c.Now()
	if won, err := st.MarkChecked(ctx(t), s.ID, claim, done, "new-sealed"); err != nil || !won {
		t.Fatalf("store the new tokens: %v %v", won, err)
	}
	got, err = st.Get(ctx(t), s.ID)
	if err != nil || !got.CheckedAt.Equal(done) || got.SealedTokens != "new-sealed" {
		t.Fatalf("after the refresh: %v %v %q", err, got.CheckedAt, got.SealedTokens)
	}
	longer := strings.Repeat("newer-sealed/", 60)
	if won, err := st.MarkChecked(ctx(t), s.ID, done, done.Add(time.Second), longer); err != nil || !won {
		t.Fatalf("longer tokens: %v %v", won, err)
	}
	if got, err = st.Get(ctx(t), s.ID); err != nil || got.SealedTokens != longer || got.Provider != "corp" || got.Subject != "sub-1" {
		t.Fatalf("longer tokens read back: %v %+v", err, got)
	}
	// Nothing else of the session moved.
	if v := validate(t, st, c, cred{s.ID, s.TokenHash}, "192.0.2.1"); v.Status != session.Valid || v.Session.UserID != s.UserID {
		t.Fatalf("validate after: %+v", v)
	}

	if _, err := st.End(ctx(t), s.ID, c.Now(), session.EndIDP, session.ActorIDP, policy); err != nil {
		t.Fatal(err)
	}
	got, _ = st.Get(ctx(t), s.ID)
	if won, err := st.MarkChecked(ctx(t), s.ID, got.CheckedAt, c.Now().Add(time.Hour), "x"); !errors.Is(err, session.ErrNotFound) || won {
		t.Fatalf("ended session: %v %v", won, err)
	}
	if got, _ = st.Get(ctx(t), s.ID); got.SealedTokens != longer || got.EndReason != session.EndIDP {
		t.Fatalf("an ended session was written: %+v", got)
	}
	other, _, _, _ := st.NewCredential(ctx(t), user())
	if _, err := st.MarkChecked(ctx(t), other, time.Time{}, c.Now(), ""); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("unknown session: %v", err)
	}

	// A session without a check yet (CheckedAt zero) is claimed from zero.
	plain := mustMint(t, st, c, user())
	if won, err := st.MarkChecked(ctx(t), plain.id, time.Time{}, c.Now(), ""); err != nil || !won {
		t.Fatalf("claim from zero: %v %v", won, err)
	}
	if won, _ := st.MarkChecked(ctx(t), plain.id, time.Time{}, c.Now().Add(time.Second), ""); won {
		t.Fatal("claimed from zero twice")
	}
}

// Concurrent claims from the same value: exactly one wins.
func testMarkCheckedOnce(t *testing.T, st session.Store, c *Clock) {
	s := mintOIDC(t, st, c, user(), "sealed")
	c.Advance(time.Minute)
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			won, err := st.MarkChecked(ctx(t), s.ID, s.CheckedAt, c.Now().Add(time.Duration(i)*time.Millisecond), "")
			if err != nil {
				t.Error(err)
			}
			if won {
				wins.Add(1)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d concurrent claims won", wins.Load())
	}
}

// testRiskLegacyDevice: a device id a store kept in clear before it kept
// digests is the same device as that id's digest, so an upgrade flags no
// browser as new; another digest still is new.
func testRiskLegacyDevice(t *testing.T, st session.Store, c *Clock) {
	uid := user()
	const clear, other = "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"
	if _, s := signInAt(t, st, c, uid, clear, berlin); s.Risk != "" {
		t.Fatalf("first sign-in (baseline) flagged %q", s.Risk)
	}
	c.Advance(time.Hour)
	if _, s := signInAt(t, st, c, uid, session.DeviceDigest(clear), berlin); s.Risk != "" {
		t.Fatalf("the digest of a device kept in clear flagged %q", s.Risk)
	}
	c.Advance(time.Hour)
	if _, s := signInAt(t, st, c, uid, session.DeviceDigest(other), berlin); s.Risk != session.FlagNewDevice {
		t.Fatalf("another device: %q", s.Risk)
	}
	c.Advance(time.Hour)
	if _, s := signInAt(t, st, c, uid, session.DeviceDigest(clear), berlin); s.Risk != "" {
		t.Fatalf("the device again, by digest: %q", s.Risk)
	}
}

// testIDsOldAndNew: a user's ids share their tag (the CLI shortens ids by
// it), and a session whose id an earlier version made (the unkeyed tag)
// is found, validated, listed and ended beside the new ones.
func testIDsOldAndNew(t *testing.T, st session.Store, c *Clock) {
	uid := user()
	old, _, oldHash, err := session.LegacyCredential(uid)
	if err != nil {
		t.Fatal(err)
	}
	now := c.Now()
	s := &session.Session{ID: old, UserID: uid, TokenHash: oldHash, IP: "192.0.2.1", LoginIP: "192.0.2.1", CreatedAt: now, LastActiveAt: now}
	if _, err := st.Create(ctx(t), s, policy, session.Limit{}); err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Second)
	a, b := mustMint(t, st, c, uid), mustMint(t, st, c, uid)
	if a.id[:12] != b.id[:12] {
		t.Fatalf("one user's ids %s and %s do not share their tag", a.id, b.id)
	}
	wantStatus(t, validate(t, st, c, cred{old, oldHash}, "192.0.2.1"), session.Valid)
	if got, err := st.Get(ctx(t), old); err != nil || got.UserID != uid {
		t.Fatalf("the old id by Get: %v %v", got, err)
	}
	if ids := activeIDs(t, st, c, uid); len(ids) != 3 || !ids[old] {
		t.Fatalf("list: %v", ids)
	}
	ended, err := st.EndUser(ctx(t), uid, a.id, c.Now(), session.EndRevoked, session.ActorAdmin, policy)
	if err != nil || len(ended) != 2 {
		t.Fatalf("end all but one: %v %v", ended, err)
	}
	wantStatus(t, validate(t, st, c, cred{old, oldHash}, "192.0.2.1"), session.Ended)
	wantStatus(t, validate(t, st, c, a, "192.0.2.1"), session.Valid)
}

// SetRoles replaces the roles (longer, shorter, none: no chunk of the
// old text survives), so that later validations see the new ones, and
// refuses ended and unknown sessions.
func testSetRoles(t *testing.T, st session.Store, c *Clock) {
	s := mintOIDC(t, st, c, user(), "sealed")
	long := strings.Repeat("group-with-a-long-name,", 60)
	for _, roles := range []string{long, "viewer", ""} {
		got, err := st.SetRoles(ctx(t), s.ID, roles)
		if err != nil || got.Roles != roles || got.UserID != s.UserID || got.SealedTokens != "sealed" {
			t.Fatalf("SetRoles(%.20q): %v %+v", roles, err, got)
		}
		if v := validate(t, st, c, cred{s.ID, s.TokenHash}, "192.0.2.1"); v.Status != session.Valid || v.Session.Roles != roles {
			t.Fatalf("validate after SetRoles(%.20q): %+v", roles, v)
		}
	}
	if _, err := st.End(ctx(t), s.ID, c.Now(), session.EndIDP, session.ActorIDP, policy); err != nil {
		t.Fatal(err)
	}
	if _, err := st.SetRoles(ctx(t), s.ID, "admin"); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("ended session: %v", err)
	}
	if got, _ := st.Get(ctx(t), s.ID); got.Roles != "" {
		t.Fatalf("an ended session was written: %q", got.Roles)
	}
	other, _, _, _ := st.NewCredential(ctx(t), user())
	if _, err := st.SetRoles(ctx(t), other, "admin"); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("unknown session: %v", err)
	}
}
