package session_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sessionauth/caddy-sessionauth/internal/redisserver"
	"github.com/sessionauth/caddy-sessionauth/session"
	"github.com/sessionauth/caddy-sessionauth/session/storetest"
)

func newRedisClient(t *testing.T) (*redisserver.Server, redis.UniversalClient) {
	srv := redisserver.Start(t)
	client := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{srv.Addr}})
	t.Cleanup(func() { client.Close() })
	return srv, client
}

func TestRedisConformance(t *testing.T) {
	_, client := newRedisClient(t)
	storetest.Run(t, func(t *testing.T, now func() time.Time) session.Store {
		return session.NewRedis(client, "sa:", now)
	}, evictIndex(client, "sa:"))
}

// Every store operation works as the least-privilege user SECURITY.md
// documents (with +scan, which it says only the "revoke every session"
// admin action's Users needs), and Redis denies it nothing.
func TestRedisConformanceAsACLUser(t *testing.T) {
	srv, admin := newRedisClient(t)
	ctx := context.Background()
	args := []any{"ACL", "SETUSER", "gateway"}
	for _, a := range strings.Fields(fmt.Sprintf(session.RedisACL, "gw-pass") + " +scan") {
		args = append(args, a)
	}
	if err := admin.Do(ctx, args...).Err(); err != nil {
		t.Fatal(err)
	}
	client := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{srv.Addr}, Username: "gateway", Password: "gw-pass"})
	t.Cleanup(func() { client.Close() })
	storetest.Run(t, func(t *testing.T, now func() time.Time) session.Store {
		return session.NewRedis(client, "sa:", now)
	}, evictIndex(client, "sa:"))
	if denied, err := admin.Do(ctx, "ACL", "LOG").Slice(); err != nil || len(denied) != 0 {
		t.Fatalf("ACL denials: %v %v", denied, err)
	}
	doc, err := os.ReadFile("../SECURITY.md")
	if err != nil {
		t.Fatal(err)
	}
	if line := "ACL SETUSER sessionauth " + fmt.Sprintf(session.RedisACL, "PASSWORD"); !strings.Contains(string(doc), line) {
		t.Fatalf("SECURITY.md does not print the ACL the store needs:\n%s", line)
	}
}

// evictIndex deletes a user's index as Redis evicts it under memory
// pressure (allkeys-* and volatile-* alike: every key has a TTL).
func evictIndex(client redis.UniversalClient, prefix string) storetest.Hooks {
	return storetest.Hooks{DropIndex: func(t *testing.T, st session.Store, user string) {
		id, _, _, err := st.NewCredential(context.Background(), user) // an id tells the user's tag
		if err != nil {
			t.Fatal(err)
		}
		if err := client.Del(context.Background(), prefix+"{"+session.TagOfID(id)+"}:u:"+user).Err(); err != nil {
			t.Fatal(err)
		}
	}}
}

// Every key the store writes has a TTL, and every key a user's operations
// touch carries that user's hash tag.
func TestRedisKeysHaveTTLAndTag(t *testing.T) {
	_, client := newRedisClient(t)
	ctx := context.Background()
	st := session.NewRedis(client, "sa:", nil)
	p := session.Policy{Lifetime: time.Hour, IdleTimeout: time.Hour, TouchInterval: time.Minute, Retention: time.Hour}
	now := time.Now()
	var ids []string
	for i := 0; i < 3; i++ {
		id, _, hash, _ := session.LegacyCredential("alice")
		ids = append(ids, id)
		s := &session.Session{ID: id, UserID: "alice", TokenHash: hash, CreatedAt: now, LastActiveAt: now}
		if _, err := st.Create(ctx, s, p, session.Limit{Max: 2}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.End(ctx, ids[2], now, session.EndLogout, session.ActorSelf, p); err != nil {
		t.Fatal(err)
	}
	keys, err := client.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 6 { // three sessions, the index, the events, the console's counters
		t.Fatalf("keys: %v", keys)
	}
	tag := "{" + session.LegacyUserTag("alice") + "}"
	for _, k := range keys {
		ttl, err := client.PTTL(ctx, k).Result()
		if err != nil || ttl <= 0 {
			t.Errorf("key %s has no TTL (%v, %v)", k, ttl, err)
		}
		// The counters are every user's (on a cluster, one hash per slot:
		// TestRedisClusterConformance).
		if !strings.HasPrefix(k, "sa:"+tag+":") && k != "sa:{stats}:n" {
			t.Errorf("key %s lacks the user's hash tag %s", k, tag)
		}
		if strings.Contains(k, "th") && strings.Contains(k, ids[0][12:]) {
			t.Errorf("key %s looks like it holds a token", k)
		}
	}
	// Only the SHA-256 of the secret is stored: no value equals a cookie.
	h, _ := client.HGetAll(ctx, "sa:"+tag+":s:"+ids[0]).Result()
	if len(h["th"]) != 32 {
		t.Fatalf("token hash field is %d bytes", len(h["th"]))
	}
}

// A pending sign-in's record expires in Redis with its TTL.
func TestRedisStashHasTTL(t *testing.T) {
	_, client := newRedisClient(t)
	ctx := context.Background()
	st := session.NewRedis(client, "sa:", nil)
	if err := st.Stash(ctx, "pending:x", []byte("v"), 10*time.Minute, time.Now()); err != nil {
		t.Fatal(err)
	}
	ttl, err := client.PTTL(ctx, "sa:once:{pending:x}").Result()
	if err != nil || ttl <= 9*time.Minute || ttl > 10*time.Minute {
		t.Fatalf("TTL %v %v", ttl, err)
	}
}

// The hot path is one command to Redis: the validate script when a
// touch is due, else a read of the session and of its place in the index,
// sent together. (Batches are not counted: under load the pipeliner may
// send a pair of reads in two, and CI once saw 11 for 10.)
func TestRedisValidateIsOneRoundTrip(t *testing.T) {
	_, client := newRedisClient(t)
	ctx := context.Background()
	st := session.NewRedis(client, "sa:", nil)
	p := session.Policy{Lifetime: time.Hour, IdleTimeout: time.Hour, TouchInterval: time.Minute, Retention: time.Hour}
	id, _, hash, _ := session.LegacyCredential("bob")
	now := time.Now()
	if _, err := st.Create(ctx, &session.Session{ID: id, UserID: "bob", TokenHash: hash, IP: "192.0.2.1", CreatedAt: now, LastActiveAt: now}, p, session.Limit{}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Validate(ctx, id, hash, "192.0.2.1", now, p); err != nil { // loads the script
		t.Fatal(err)
	}
	before := commandCalls(t, client)
	for i := 0; i < 10; i++ {
		if v, err := st.Validate(ctx, id, hash, "192.0.2.1", now.Add(time.Duration(i)*time.Minute), p); err != nil || v.Status != session.Valid {
			t.Fatalf("validate: %v %v", v.Status, err)
		}
	}
	after := commandCalls(t, client)
	// i=0 is within the interval (two reads); i=1..9 each touch (one
	// script, which reads the index itself): no read before a script.
	for cmd, want := range map[string]int64{"evalsha": 9, "eval": 0, "zscore": 10} {
		if got := after[cmd] - before[cmd]; got != want {
			t.Errorf("10 validations (9 touches) ran %s %d times, want %d", cmd, got, want)
		}
	}
	// Within the touch interval nothing is written: no script, two reads.
	before = commandCalls(t, client)
	last := now.Add(9 * time.Minute)
	for i := 1; i <= 10; i++ {
		if v, err := st.Validate(ctx, id, hash, "192.0.2.1", last.Add(time.Duration(i)*time.Second), p); err != nil || v.Status != session.Valid || v.Touched {
			t.Fatalf("validate: %+v %v", v, err)
		}
	}
	after = commandCalls(t, client)
	for _, cmd := range []string{"evalsha", "eval", "hgetall", "zscore"} {
		want := map[string]int64{"hgetall": 10, "zscore": 10}[cmd]
		if got := after[cmd] - before[cmd]; got != want {
			t.Errorf("10 validations within the touch interval ran %s %d times, want %d", cmd, got, want)
		}
	}
}

// commandCalls reads how often Redis ran each command (inside scripts too).
func commandCalls(t *testing.T, client redis.UniversalClient) map[string]int64 {
	t.Helper()
	info, err := client.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, line := range strings.Split(info, "\r\n") {
		name, rest, ok := strings.Cut(strings.TrimPrefix(line, "cmdstat_"), ":calls=")
		if ok {
			out[name], _ = strconv.ParseInt(strings.SplitN(rest, ",", 2)[0], 10, 64)
		}
	}
	return out
}

func BenchmarkRedisValidate(b *testing.B) {
	srv := redisserver.Start(b)
	client := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{srv.Addr}})
	defer client.Close()
	benchValidate(b, session.NewRedis(client, "sa:", nil))
}

// BenchmarkRedisValidateParallel is the hot path under concurrent
// requests, where the validations of many requests can share a write and
// a read (go-redis's automatic pipelining).
func BenchmarkRedisValidateParallel(b *testing.B) {
	srv := redisserver.Start(b)
	client := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{srv.Addr}})
	defer client.Close()
	st := session.NewRedis(client, "sa:", nil)
	ctx := context.Background()
	p := session.Policy{Lifetime: time.Hour, IdleTimeout: time.Hour, TouchInterval: time.Minute, Retention: time.Hour}
	id, _, hash, _ := session.LegacyCredential("bench")
	now := time.Now()
	if _, err := st.Create(ctx, &session.Session{ID: id, UserID: "bench", TokenHash: hash, IP: "192.0.2.1", CreatedAt: now, LastActiveAt: now}, p, session.Limit{}); err != nil {
		b.Fatal(err)
	}
	b.SetParallelism(32) // goroutines per CPU: requests in flight at once
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if v, err := st.Validate(ctx, id, hash, "192.0.2.1", now, p); err != nil || v.Status != session.Valid {
				b.Error(v.Status, err)
				return
			}
		}
	})
}

func BenchmarkMemoryValidate(b *testing.B) {
	benchValidate(b, newMemory(b, nil))
}

// benchValidate times the hot path of st: a valid session, nothing to write.
func benchValidate(b *testing.B, st session.Store) {
	ctx := context.Background()
	p := session.Policy{Lifetime: time.Hour, IdleTimeout: time.Hour, TouchInterval: time.Minute, Retention: time.Hour}
	id, _, hash, _ := session.LegacyCredential("bench")
	now := time.Now()
	if _, err := st.Create(ctx, &session.Session{ID: id, UserID: "bench", TokenHash: hash, IP: "192.0.2.1", CreatedAt: now, LastActiveAt: now}, p, session.Limit{}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if v, err := st.Validate(ctx, id, hash, "192.0.2.1", now, p); err != nil || v.Status != session.Valid {
			b.Fatal(v.Status, err)
		}
	}
}

// The conformance suite on a real 3-master Redis Cluster: every script
// touches one slot, so every operation works across the cluster.
func TestRedisClusterConformance(t *testing.T) {
	c := redisserver.StartCluster(t, 3)
	client := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: c.Addrs()})
	t.Cleanup(func() { client.Close() })
	if _, ok := client.(*redis.ClusterClient); !ok {
		t.Fatalf("several addresses made a %T, not a cluster client", client)
	}
	storetest.Run(t, func(t *testing.T, now func() time.Time) session.Store {
		return session.NewRedis(client, "sa:", now)
	}, evictIndex(client, "sa:"))
	// The users' keys are spread over the masters.
	st := session.NewRedis(client, "spread:", nil)
	p := session.Policy{Lifetime: time.Hour, IdleTimeout: time.Hour, TouchInterval: time.Minute, Retention: time.Hour}
	for i := 0; i < 30; i++ {
		user := "u" + strings.Repeat("x", i)
		id, _, hash, _ := session.LegacyCredential(user)
		now := time.Now()
		if _, err := st.Create(context.Background(), &session.Session{ID: id, UserID: user, TokenHash: hash, CreatedAt: now, LastActiveAt: now}, p, session.Limit{Max: 5}); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range c.Nodes {
		nc := redis.NewClient(&redis.Options{Addr: n.Addr})
		keys, err := nc.DBSize(context.Background()).Result()
		nc.Close()
		if err != nil || keys == 0 {
			t.Errorf("node %s holds %d keys (%v): the users are not spread", n.Addr, keys, err)
		}
	}
	users, err := st.Users(context.Background())
	if err != nil || len(users) != 30 {
		t.Fatalf("users across the masters: %d %v", len(users), err)
	}
}

// Long user agents, emails, names and roles round-trip exactly, and the
// session hash stays a compact listpack (one value over 64 bytes would
// make it a hashtable several times the size).
func TestRedisSessionHashStaysCompact(t *testing.T) {
	_, client := newRedisClient(t)
	ctx := context.Background()
	st := session.NewRedis(client, "sa:", nil)
	p := session.Policy{Lifetime: time.Hour, IdleTimeout: time.Hour, TouchInterval: time.Minute, Retention: time.Hour}
	id, _, hash, _ := session.LegacyCredential("zoë")
	now := time.Now().Truncate(time.Millisecond).UTC()
	in := &session.Session{ID: id, UserID: "zoë", TokenHash: hash, CreatedAt: now, LastActiveAt: now,
		UserAgent: strings.Repeat("Mozilla/5.0 (é; ü) ", 50)[:1000], Email: strings.Repeat("ä", 70) + "@example.com",
		Name: strings.Repeat("Zoë ", 40), Roles: strings.Repeat("role,", 60)}
	if _, err := st.Create(ctx, in, p, session.Limit{}); err != nil {
		t.Fatal(err)
	}
	got, err := st.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if got.UserAgent != in.UserAgent || got.Email != in.Email || got.Name != in.Name || got.Roles != in.Roles {
		t.Fatalf("long values changed:\n%q\n%q", got.UserAgent, in.UserAgent)
	}
	enc, err := client.ObjectEncoding(ctx, "sa:{"+session.LegacyUserTag("zoë")+"}:s:"+id).Result()
	if err != nil || enc != "listpack" {
		t.Fatalf("session hash encoding %q (%v)", enc, err)
	}
}

// A sign-in script that reaches Redis after its sign-in was discarded (it
// waited behind a stalled Redis) writes nothing.
func TestRedisLateCreateAfterDiscard(t *testing.T) {
	_, client := newRedisClient(t)
	ctx := context.Background()
	st := session.NewRedis(client, "sa:", nil)
	p := session.Policy{Lifetime: time.Hour, IdleTimeout: time.Hour, TouchInterval: time.Minute, Retention: time.Hour}
	id, _, hash, _ := session.LegacyCredential("late")
	now := time.Now()
	s := &session.Session{ID: id, UserID: "late", TokenHash: hash, CreatedAt: now, LastActiveAt: now}
	if _, err := st.Discard(ctx, s, p); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Create(ctx, s, p, session.Limit{Max: 1, Mode: session.LimitReject}); err == nil {
		t.Fatal("a discarded sign-in was created")
	}
	if l, err := st.List(ctx, "late", now, p); err != nil || len(l) != 0 {
		t.Fatalf("listed: %v %v", l, err)
	}
	if v, err := st.Validate(ctx, id, hash, "", now, p); err != nil || v.Status != session.Unknown {
		t.Fatalf("validate: %v %v", v.Status, err)
	}
	if ttl, err := client.PTTL(ctx, "sa:{"+session.TagOfID(id)+"}:s:"+id).Result(); err != nil || ttl <= 0 {
		t.Fatalf("tombstone TTL %v %v", ttl, err)
	}
}

// scriptKeys records how many keys the last script the client ran was
// given: the sessions it may read.
type scriptKeys struct{ n *atomic.Int64 }

func (h scriptKeys) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h scriptKeys) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if name := cmd.Name(); name == "evalsha" || name == "eval" {
			if n, ok := cmd.Args()[2].(int); ok {
				h.n.Store(int64(n))
			}
		}
		return next(ctx, cmd)
	}
}
func (h scriptKeys) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// signInLoop signs user in n times under max_sessions 5 (oldest), each
// sign-in ending the oldest once there are five.
func signInLoop(tb testing.TB, st session.Store, user string, n int) {
	ctx := context.Background()
	p := session.Policy{Lifetime: time.Hour, IdleTimeout: time.Hour, TouchInterval: time.Minute, Retention: time.Hour}
	for i := 0; i < n; i++ {
		id, _, hash, _ := session.LegacyCredential(user)
		now := time.Now()
		s := &session.Session{ID: id, UserID: user, TokenHash: hash, IP: "192.0.2.1", LoginIP: "192.0.2.1", CreatedAt: now, LastActiveAt: now}
		if _, err := st.Create(ctx, s, p, session.Limit{Max: 5, Mode: session.LimitOldest}); err != nil {
			tb.Fatal(err)
		}
	}
}

// A sign-in reads the same number of sessions after 10 past sign-ins as
// after 300: the ended ones past the newest 50 are gone (SPEC 10).
func TestRedisSignInCostIsFlat(t *testing.T) {
	_, client := newRedisClient(t)
	var keys atomic.Int64
	client.AddHook(scriptKeys{&keys})
	st := session.NewRedis(client, "sa:", nil)
	signInLoop(t, st, "flat", 11)
	early := keys.Load()
	signInLoop(t, st, "flat", 289)
	signInLoop(t, st, "flat", 1)
	late := keys.Load()
	// session, index, events; then the sessions in the index; then the
	// console's counters
	if early != 3+10+1 || late != 3+5+50+1 {
		t.Fatalf("the sign-in script was given %d keys after 10 sign-ins, %d after 300", early, late)
	}
	if n, err := client.ZCard(context.Background(), "sa:{"+session.LegacyUserTag("flat")+"}:u:flat").Result(); err != nil || n > 5+50+2 {
		t.Fatalf("the user index holds %d members (%v)", n, err)
	}
}

// BenchmarkSignIn shows that a sign-in costs the same after 10 and after
// 10,000 past sign-ins of the user, in both stores.
func BenchmarkSignIn(b *testing.B) {
	srv := redisserver.Start(b)
	client := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{srv.Addr}})
	defer client.Close()
	var keys atomic.Int64
	client.AddHook(scriptKeys{&keys})
	for _, past := range []int{10, 10_000} {
		for _, kind := range []string{"memory", "redis"} {
			b.Run(fmt.Sprintf("%s/past=%d", kind, past), func(b *testing.B) {
				var st session.Store = newMemory(b, nil)
				if kind == "redis" {
					st = session.NewRedis(client, fmt.Sprintf("b%d:", past), nil)
				}
				signInLoop(b, st, "bench", past)
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					signInLoop(b, st, "bench", 1)
				}
				if kind == "redis" {
					b.ReportMetric(float64(keys.Load()), "keys/sign-in")
				}
			})
		}
	}
}

// sessionReads counts the session hashes the client reads, one by one or
// in pipelines.
type sessionReads struct{ n *atomic.Int64 }

func (h sessionReads) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h sessionReads) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() == "hgetall" {
			h.n.Add(1)
		}
		return next(ctx, cmd)
	}
}
func (h sessionReads) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, cmd := range cmds {
			if cmd.Name() == "hgetall" {
				h.n.Add(1)
			}
		}
		return next(ctx, cmds)
	}
}

// A page of the sessions from one address reads about a page of
// sessions, however many share the address.
func TestRedisByIPReadsAPage(t *testing.T) {
	_, client := newRedisClient(t)
	ctx := context.Background()
	st := session.NewRedis(client, "sa:", nil)
	p := session.Policy{Lifetime: time.Hour, IdleTimeout: time.Hour, TouchInterval: time.Minute, Retention: time.Hour}
	now := time.Now() // all at one millisecond: ties in the index must not widen a page
	for i := 0; i < 600; i++ {
		user := fmt.Sprintf("nat-%d", i)
		id, _, hash, _ := session.LegacyCredential(user)
		s := &session.Session{ID: id, UserID: user, TokenHash: hash, IP: "192.0.2.99", LoginIP: "192.0.2.99", CreatedAt: now, LastActiveAt: now}
		if _, err := st.Create(ctx, s, p, session.Limit{}); err != nil {
			t.Fatal(err)
		}
	}
	var reads atomic.Int64
	client.AddHook(sessionReads{&reads})
	page, next, err := st.ByIP(ctx, "192.0.2.99", time.Now(), p, "", 20)
	if err != nil || len(page) != 20 || next == "" {
		t.Fatalf("first page: %d sessions, next %q, %v", len(page), next, err)
	}
	if n := reads.Load(); n > 21 {
		t.Fatalf("a page of 20 read %d sessions", n)
	}
	reads.Store(0)
	if page, _, err := st.ByIP(ctx, "192.0.2.99", time.Now(), p, next, 20); err != nil || len(page) != 20 || reads.Load() > 21 {
		t.Fatalf("second page: %d sessions, %d read, %v", len(page), reads.Load(), err)
	}
}

// A Redis full to maxmemory (noeviction) refuses writes: a due touch is
// skipped and said so, a new IP (which must be recorded) is ErrStoreFull,
// an expired session is expired all the same, and a sign-in fails. Room
// again, and touches are written again.
func TestRedisFullRefusesOnlyWrites(t *testing.T) {
	_, client := newRedisClient(t)
	ctx := context.Background()
	st := session.NewRedis(client, "sa:", nil)
	p := session.Policy{Lifetime: time.Hour, IdleTimeout: time.Hour, TouchInterval: time.Minute, Retention: time.Hour}
	now := time.Now().Truncate(time.Millisecond)
	var ids []string
	var hashes [][32]byte
	for i := 0; i < 2; i++ {
		id, _, hash, _ := session.LegacyCredential("carol")
		s := &session.Session{ID: id, UserID: "carol", TokenHash: hash, IP: "192.0.2.1", CreatedAt: now, LastActiveAt: now}
		if _, err := st.Create(ctx, s, p, session.Limit{}); err != nil {
			t.Fatal(err)
		}
		ids, hashes = append(ids, id), append(hashes, hash)
		now = s.CreatedAt
	}
	if err := client.ConfigSet(ctx, "maxmemory-policy", "noeviction").Err(); err != nil {
		t.Fatal(err)
	}
	if err := client.ConfigSet(ctx, "maxmemory", "1").Err(); err != nil { // full
		t.Fatal(err)
	}
	later := now.Add(2 * time.Minute)
	v, err := st.Validate(ctx, ids[0], hashes[0], "192.0.2.1", later, p)
	if err != nil || v.Status != session.Valid || v.Touched || !v.TouchRefused || !v.Session.LastActiveAt.Before(later) {
		t.Fatalf("a due touch with Redis full: %+v %v", v, err)
	}
	if _, err := st.Validate(ctx, ids[0], hashes[0], "198.51.100.7", later, p); !errors.Is(err, session.ErrStoreFull) {
		t.Fatalf("a new IP with Redis full: %v", err)
	}
	if v, err := st.Validate(ctx, ids[1], hashes[1], "192.0.2.1", now.Add(p.IdleTimeout), p); err != nil || v.Status != session.Expired {
		t.Fatalf("an expired session with Redis full: %+v %v", v, err)
	}
	id, _, hash, _ := session.LegacyCredential("carol")
	if _, err := st.Create(ctx, &session.Session{ID: id, UserID: "carol", TokenHash: hash, CreatedAt: later, LastActiveAt: later}, p, session.Limit{}); err == nil {
		t.Fatal("a sign-in succeeded with Redis full")
	}
	if err := client.ConfigSet(ctx, "maxmemory", "0").Err(); err != nil {
		t.Fatal(err)
	}
	if v, err := st.Validate(ctx, ids[0], hashes[0], "192.0.2.1", later, p); err != nil || !v.Touched || v.TouchRefused {
		t.Fatalf("a due touch with room again: %+v %v", v, err)
	}
}
