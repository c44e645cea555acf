package session_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sessionauth/caddy-sessionauth/session"
	"github.com/sessionauth/caddy-sessionauth/session/storetest"
)

// The read path (a plain HGETALL and ZSCORE for a session this process
// validated lately) is the Go twin of validateScript. Each case runs on
// two sessions: one checked by a warm store, which reads, and one by a
// store that has never seen it, which runs the script. Between the
// warm-up and the check another gateway (or Redis itself) changes
// something; both answers must be what the case expects, and the same.
func TestRedisReadPathAgreesWithScript(t *testing.T) {
	_, client := newRedisClient(t)
	const ipA, ipB = "192.0.2.1", "198.51.100.7"
	// idle shorter than the touch interval: a read sees the expiry first
	p := session.Policy{Lifetime: 24 * time.Hour, IdleTimeout: 2 * time.Minute, TouchInterval: 5 * time.Minute, Retention: 48 * time.Hour}
	sessionKey := func(id string) string { return "sa:{" + session.TagOfID(id) + "}:s:" + id }
	indexKey := func(uid string) string { return "sa:{" + session.LegacyUserTag(uid) + "}:u:" + uid }
	type env struct {
		t       *testing.T
		c       *storetest.Clock
		other   *session.Redis // another gateway on the same Redis
		id, uid string
		hash    [32]byte
	}
	cases := []struct {
		name    string
		token   bool
		change  func(e env)
		ip      string
		badHash bool
		want    session.Status
		touched bool
		script  bool          // the warm store must run the script
		pass    time.Duration // more time before the check
	}{
		{name: "NothingDue", ip: ipA, want: session.Valid},
		{name: "EndedElsewhere", ip: ipA, want: session.Ended, change: func(e env) {
			if _, err := e.other.End(context.Background(), e.id, e.c.Now(), session.EndRevoked, session.ActorAdmin, p); err != nil {
				e.t.Fatal(err)
			}
		}},
		{name: "UserEndedElsewhere", ip: ipA, want: session.Ended, change: func(e env) {
			if _, err := e.other.EndUser(context.Background(), e.uid, "", e.c.Now(), session.EndRevoked, session.ActorAdmin, p); err != nil {
				e.t.Fatal(err)
			}
		}},
		{name: "IndexLost", ip: ipA, want: session.Unlisted, change: func(e env) {
			client.Del(context.Background(), indexKey(e.uid))
		}},
		{name: "Purged", ip: ipA, want: session.Unknown, change: func(e env) {
			client.Del(context.Background(), sessionKey(e.id))
		}},
		{name: "WrongSecret", ip: ipA, badHash: true, want: session.Unknown},
		{name: "NewIP", ip: ipB, want: session.Valid, touched: true, script: true},
		{name: "IdleExpired", ip: ipA, want: session.Expired, script: true, pass: p.IdleTimeout},
		{name: "TouchedFromElsewhere", ip: ipA, want: session.Valid, touched: true, script: true, change: func(e env) {
			// another gateway saw it from another IP: coming back is a change
			if v, err := e.other.Validate(context.Background(), e.id, e.hash, ipB, e.c.Now(), p); err != nil || !v.Touched {
				e.t.Fatalf("other gateway: %+v %v", v, err)
			}
		}},
		{name: "TokenAfterFirstUse", token: true, ip: ipA, want: session.Valid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Both sessions live the same history on one clock, step by step.
			c := storetest.NewClock()
			warm := session.NewRedis(client, "sa:", c.Now)
			type run struct {
				mode, id, uid string
				hash          [32]byte
				store         func() *session.Redis
				got           session.Validation
			}
			runs := []*run{
				{mode: "warm", store: func() *session.Redis { return warm }},
				{mode: "cold", store: func() *session.Redis { return session.NewRedis(client, "sa:", c.Now) }},
			}
			for _, r := range runs {
				r.uid = "user-" + tc.name + "-" + r.mode
				var err error
				if r.id, _, r.hash, err = session.LegacyCredential(r.uid); err != nil {
					t.Fatal(err)
				}
				s := &session.Session{ID: r.id, UserID: r.uid, TokenHash: r.hash, IP: ipA, LoginIP: ipA, CreatedAt: c.Now(), LastActiveAt: c.Now()}
				if tc.token {
					s.Kind, s.AuthMethod, s.TokenLifetime = session.KindToken, session.MethodToken, 48*time.Hour
				}
				if _, err := warm.Create(context.Background(), s, p, session.Limit{}); err != nil {
					t.Fatal(err)
				}
			}
			c.Advance(time.Second)
			for _, r := range runs {
				if v, err := r.store().Validate(context.Background(), r.id, r.hash, ipA, c.Now(), p); err != nil || v.Status != session.Valid {
					t.Fatalf("%s warm-up: %+v %v", r.mode, v, err)
				}
			}
			c.Advance(time.Second)
			if tc.change != nil {
				for _, r := range runs {
					tc.change(env{t: t, c: c, other: session.NewRedis(client, "sa:", c.Now), id: r.id, uid: r.uid, hash: r.hash})
				}
			}
			c.Advance(time.Second + tc.pass)
			for _, r := range runs {
				check := r.hash
				if tc.badHash {
					check[0] ^= 1
				}
				scripts := scriptRuns(t, client)
				v, err := r.store().Validate(context.Background(), r.id, check, tc.ip, c.Now(), p)
				if err != nil {
					t.Fatalf("%s: %v", r.mode, err)
				}
				if ran := scriptRuns(t, client) > scripts; r.mode == "warm" && ran != tc.script {
					t.Errorf("warm store ran the script: %v, want %v", ran, tc.script)
				}
				if v.Status != tc.want || v.Touched != tc.touched {
					t.Fatalf("%s: status %v touched %v, want %v %v", r.mode, v.Status, v.Touched, tc.want, tc.touched)
				}
				r.got = v
			}
			if w, c := project(runs[0].got), project(runs[1].got); w != c {
				t.Fatalf("the read path and the script disagree:\nread   %s\nscript %s", w, c)
			}
		})
	}
}

// project is what a validation tells the gateway, without what differs
// between two sessions of the same history (ids, users, secrets).
func project(v session.Validation) string {
	out := []string{fmt.Sprint(v.Status), strconv.FormatBool(v.Touched), v.PrevIP, strconv.FormatBool(v.TouchRefused)}
	if s := v.Session; s != nil {
		out = append(out, s.IP, s.LoginIP, s.LastActiveAt.String(), s.EndedAt.String(), s.EndReason, s.Kind)
	}
	return strings.Join(out, " | ")
}

// scriptRuns counts the scripts Redis has run.
func scriptRuns(t *testing.T, client redis.UniversalClient) int64 {
	calls := commandCalls(t, client)
	return calls["evalsha"] + calls["eval"]
}
