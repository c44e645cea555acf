package storetest

import (
	"testing"
	"time"

	"github.com/sessionauth/caddy-sessionauth/session"
)

// Stores may be shared between the suite's cases (Redis: one prefix), so
// the counters are compared before and after what a case did.

func stats(t *testing.T, st session.Store, c *Clock) *session.Stats {
	t.Helper()
	s, err := st.Stats(ctx(t), c.Now(), policy)
	if err != nil {
		t.Fatalf("stats: %v", err)
	}
	if len(s.Hourly) != session.StatsHours || len(s.Daily) != session.StatsDays {
		t.Fatalf("%d hourly and %d daily buckets, want %d and %d", len(s.Hourly), len(s.Daily), session.StatsHours, session.StatsDays)
	}
	for i, b := range s.Hourly {
		if i > 0 && b.At.Sub(s.Hourly[i-1].At) != time.Hour {
			t.Fatalf("hourly buckets not an hour apart: %v", s.Hourly)
		}
	}
	if last := s.Hourly[len(s.Hourly)-1].At; c.Now().Before(last) || !c.Now().Before(last.Add(time.Hour)) {
		t.Fatalf("the last hourly bucket starts %v, not the hour of %v", last, c.Now())
	}
	for i := 1; i < len(s.Recent); i++ {
		if s.Recent[i].At.After(s.Recent[i-1].At) {
			t.Fatalf("recent events not newest first")
		}
	}
	return s
}

// bucketAt is the bucket starting at at, or a zero one.
func bucketAt(bs []session.StatsBucket, at time.Time) session.StatsBucket {
	for _, b := range bs {
		if b.At.Equal(at) {
			return b
		}
	}
	return session.StatsBucket{At: at}
}

func diff(a, b session.StatsBucket) [3]int64 {
	return [3]int64{b.SignIns - a.SignIns, b.FailedSignIns - a.FailedSignIns, b.Revocations - a.Revocations}
}

// Sign-ins (not API tokens), failed sign-ins (with and without a user)
// and revocations (not a sign-out) land in the hour and the day they
// happened; the active sessions are broken down by country, device type
// and browser.
func testStatsCounts(t *testing.T, st session.Store, c *Clock) {
	before := stats(t, st, c)
	hour, day := before.Hourly[len(before.Hourly)-1].At, before.Daily[len(before.Daily)-1].At
	mark := user() // unique breakdown values: other cases' sessions may be live
	uid := user()
	var ids []string
	for i := range 3 {
		s := newSession(t, st, c, uid)
		s.Country, s.DeviceType, s.Browser = "C"+mark, "T"+mark, "B"+mark
		if i == 2 {
			s.DeviceType = "P" + mark
		}
		if _, err := st.Create(ctx(t), s, policy, session.Limit{}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, s.ID)
	}
	mustMintChild(t, st, c, uid, ids[0]) // an API token: no sign-in
	for _, who := range []string{uid, ""} {
		e := session.Event{Type: session.EventLoginFailed, At: c.Now(), UserID: who, IP: "198.51.100.7", Reason: "bad_password"}
		if err := st.Record(ctx(t), e, policy); err != nil {
			t.Fatal(err)
		}
	}
	mid := stats(t, st, c)
	if got := mid.ActiveSessions - before.ActiveSessions; got != 3 {
		t.Fatalf("active sessions went up by %d, want 3", got)
	}
	if mid.ByCountry["C"+mark] != 3 || mid.ByBrowser["B"+mark] != 3 || mid.ByDeviceType["T"+mark] != 2 || mid.ByDeviceType["P"+mark] != 1 {
		t.Fatalf("breakdowns: %v %v %v", mid.ByCountry, mid.ByDeviceType, mid.ByBrowser)
	}
	if _, err := st.End(ctx(t), ids[0], c.Now(), session.EndRevoked, "admin:root", policy); err != nil {
		t.Fatal(err)
	}
	if _, err := st.End(ctx(t), ids[1], c.Now(), session.EndLogout, session.ActorSelf, policy); err != nil {
		t.Fatal(err)
	}
	if _, err := st.EndUser(ctx(t), uid, "", c.Now(), session.EndRevoked, session.ActorAdmin, policy); err != nil {
		t.Fatal(err) // the third session and the token
	}
	after := stats(t, st, c)
	if got := diff(bucketAt(before.Hourly, hour), bucketAt(after.Hourly, hour)); got != [3]int64{3, 2, 3} {
		t.Fatalf("this hour: sign-ins, failed, revocations went up by %v, want [3 2 3]", got)
	}
	if got := diff(bucketAt(before.Daily, day), bucketAt(after.Daily, day)); got != [3]int64{3, 2, 3} {
		t.Fatalf("today: sign-ins, failed, revocations went up by %v, want [3 2 3]", got)
	}
	if after.ActiveSessions != before.ActiveSessions || after.ByCountry["C"+mark] != 0 {
		t.Fatalf("after the ends: %d active (was %d), %v", after.ActiveSessions, before.ActiveSessions, after.ByCountry)
	}
}

// An hour is kept StatsHours and a day StatsDays: an hour moves out of
// the hourly figures but stays in its day's, and a slot taken over by a
// later hour starts again from zero.
func testStatsBuckets(t *testing.T, st session.Store, c *Clock) {
	fail := func(n int) {
		for range n {
			e := session.Event{Type: session.EventLoginFailed, At: c.Now(), UserID: user(), Reason: "unknown_user"}
			if err := st.Record(ctx(t), e, policy); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Far enough ahead that no other case's counts share these buckets.
	c.Advance(2000 * time.Hour)
	s0 := stats(t, st, c)
	hour0, day0 := s0.Hourly[len(s0.Hourly)-1].At, s0.Daily[len(s0.Daily)-1].At
	fail(2)
	c.Advance(session.StatsHours * time.Hour) // the same slot of the ring
	fail(1)
	s1 := stats(t, st, c)
	if got := bucketAt(s1.Hourly, s1.Hourly[len(s1.Hourly)-1].At).FailedSignIns; got != 1 {
		t.Fatalf("the hour that took over the slot counts %d failures, want 1", got)
	}
	for _, b := range s1.Hourly {
		if b.At.Equal(hour0) {
			t.Fatalf("an hour %v old is still in the hourly figures", session.StatsHours*time.Hour)
		}
	}
	if got := bucketAt(s1.Daily, day0).FailedSignIns - bucketAt(s0.Daily, day0).FailedSignIns; got != 2 {
		t.Fatalf("the first day counts %d more failures, want 2", got)
	}
	c.Advance(session.StatsDays * 24 * time.Hour)
	s2 := stats(t, st, c)
	for _, b := range append(s2.Hourly, s2.Daily...) {
		if b.FailedSignIns != 0 && (b.At.Equal(day0) || b.At.Before(day0.Add(24*time.Hour))) {
			t.Fatalf("counts of more than %d days ago are still shown: %+v", session.StatsDays, b)
		}
	}
}

// The latest risk events and failed sign-ins are kept with who, when,
// where and why.
func testStatsRecent(t *testing.T, st session.Store, c *Clock) {
	uid := user()
	signInAt(t, st, c, uid, "d1", berlin)
	c.Advance(time.Minute)
	signInAt(t, st, c, uid, "d2", newYork) // new device, new country, impossible travel
	e := session.Event{Type: session.EventLoginFailed, At: c.Now(), UserID: uid, IP: "203.0.113.9", Country: "FR", Reason: "bad_password"}
	if err := st.Record(ctx(t), e, policy); err != nil {
		t.Fatal(err)
	}
	s := stats(t, st, c)
	found := map[string]bool{}
	for _, r := range s.Recent {
		if r.UserID != uid {
			continue
		}
		if !r.At.Equal(c.Now().UTC()) {
			t.Fatalf("recent event at %v, want %v", r.At, c.Now())
		}
		switch r.Type {
		case session.EventRisk:
			if r.Country != "US" {
				t.Fatalf("risk event without its place: %+v", r)
			}
			found[r.Reason] = true
		case session.EventLoginFailed:
			if r.IP != "203.0.113.9" || r.Country != "FR" || r.Reason != "bad_password" {
				t.Fatalf("failed sign-in: %+v", r)
			}
			found["failed"] = true
		default:
			t.Fatalf("a %s event among the recent ones", r.Type)
		}
	}
	for _, want := range []string{"new-device", "new-country", "impossible-travel", "failed"} {
		if !found[want] {
			t.Fatalf("no recent %s event for the user: %+v", want, s.Recent)
		}
	}
}
