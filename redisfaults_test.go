package sessionauth

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sessionauth/caddy-sessionauth/internal/redisserver"
)

// At its first connection, the store reads Redis's eviction policy and
// logs an error unless it is noeviction (volatile-* included: every key
// has a TTL).
func TestEvictionPolicyIsChecked(t *testing.T) {
	for _, policy := range []string{"allkeys-lru", "volatile-lru", "noeviction"} {
		t.Run(policy, func(t *testing.T) {
			srv := redisserver.Start(t, "--maxmemory", "64mb", "--maxmemory-policy", policy)
			core, logs := observer.New(zap.DebugLevel)
			c := &StoreConfig{Type: "redis", URL: "redis://" + srv.Addr}
			c.applyDefaults()
			ps, key, err := loadStore(c, zap.New(core))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _, _ = storePool.Delete(key) })
			if n := logs.FilterMessageSnippet("evict").Len(); n != 0 {
				t.Fatalf("the policy was read before any connection: %v", logs.All())
			}
			if _, err := ps.Get(context.Background(), strings.Repeat("a", 32)); err == nil {
				t.Fatal("found a session in an empty store")
			}
			deadline := time.Now().Add(5 * time.Second) // the check runs in the background
			for logs.FilterMessageSnippet("evict").Len() == 0 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			lines := logs.FilterMessageSnippet("evict").All()
			if len(lines) != 1 {
				t.Fatalf("eviction policy log lines: %v", logs.All())
			}
			if got, want := lines[0].Level, zapcore.ErrorLevel; (policy == "noeviction") == (got == want) {
				t.Fatalf("policy %s logged at %v: %s %v", policy, got, lines[0].Message, lines[0].Context)
			}
		})
	}
}

// A full Redis (maxmemory with noeviction) refuses writes. The sessions
// already signed in are still served when their touch is due, without
// the write, counted and logged; a sign-in, and a request from a new IP
// (which must be recorded), get 503.
func TestFullRedisServesSignedInSessions(t *testing.T) {
	srv := redisserver.Start(t, "--maxmemory", "4mb", "--maxmemory-policy", "noeviction")
	core, logs := observer.New(zap.InfoLevel)
	h, clock := testHandler(t, func(h *Handler) {
		h.Store = &StoreConfig{Type: "redis", URL: "redis://" + srv.Addr, KeyPrefix: "full:"}
		h.LoginRate = &Rate{Count: 1000, Window: caddy.Duration(time.Minute)}
	})
	h.logger = zap.New(core)
	wireParts(h)
	var cookies []*http.Cookie
	for i := 0; i < 20; i++ {
		c := signIn(t, h, fmt.Sprintf("user%d", i))
		cookies = append(cookies, c)
		if w := serve(t, h, get("/", c), &upstream{}); w.Code != 200 {
			t.Fatalf("before Redis is full: %d", w.Code)
		}
	}
	fillRedis(t, srv.Addr)

	clock.Advance(time.Duration(h.TouchInterval) + time.Second) // every session is due a touch
	for round := 0; round < 2; round++ {
		for i, c := range cookies {
			up := &upstream{}
			w := serve(t, h, get("/", c), up)
			if w.Code != 200 || up.header.Get("X-Auth-User") != fmt.Sprintf("user%d", i) {
				t.Fatalf("a signed-in user with Redis full: %d %v", w.Code, up.header.Get("X-Auth-User"))
			}
		}
	}
	if got := counterValue(t, h.metrics.touchesRefused); got != 40 {
		t.Errorf("refused touches counted: %v, want 40", got)
	}
	if n := logs.FilterMessageSnippet("store full").Len(); n != 1 {
		t.Errorf("warnings of refused touches: %d, want 1 (at most one a minute)", n)
	}

	r := get("/", cookies[0])
	r.Header.Set("Test-Client-IP", "198.51.100.7")
	up := &upstream{}
	if w := serve(t, h, r, up); w.Code != http.StatusServiceUnavailable || up.calls != 0 {
		t.Errorf("a new IP that cannot be recorded: %d, upstream %d", w.Code, up.calls)
	}
	up = &upstream{respond: func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Session-Login", "newcomer")
		w.WriteHeader(http.StatusSeeOther)
	}}
	w := serve(t, h, httptest.NewRequest("POST", "/login", nil), up)
	if w.Code != http.StatusServiceUnavailable || strings.Contains(w.Header().Get("Set-Cookie"), "session=") {
		t.Errorf("a sign-in with Redis full: %d %v", w.Code, w.Header())
	}
}

// fillRedis writes filler keys (outside any gateway prefix) until Redis
// refuses a write for memory, then sets maxmemory a little below what is
// in use, so that client buffers Redis frees later make no room again.
func fillRedis(t *testing.T, addr string) {
	t.Helper()
	ctx := context.Background()
	rc := redis.NewClient(&redis.Options{Addr: addr})
	defer rc.Close()
	value := strings.Repeat("x", 64<<10)
	for i := 0; ; i++ {
		err := rc.Set(ctx, fmt.Sprintf("filler:%d", i), value, 0).Err()
		if err != nil && strings.HasPrefix(err.Error(), "OOM ") {
			break
		}
		if err != nil || i == 10000 {
			t.Fatalf("filling Redis: %v", err)
		}
	}
	info, err := rc.Info(ctx, "memory").Result()
	if err != nil {
		t.Fatal(err)
	}
	var used int64
	if _, err := fmt.Sscan(infoField(info, "used_memory"), &used); err != nil {
		t.Fatal(err)
	}
	if err := rc.ConfigSet(ctx, "maxmemory", fmt.Sprint(used-256<<10)).Err(); err != nil {
		t.Fatal(err)
	}
}

// counterValue reads a counter through a registry of its own.
func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != 1 {
		t.Fatalf("gathering: %v %v", mfs, err)
	}
	return mfs[0].GetMetric()[0].GetCounter().GetValue()
}

// infoField finds "name:value" in an INFO reply.
func infoField(info, name string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return ""
}
