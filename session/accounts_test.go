package session_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sessionauth/caddy-sessionauth/internal/redisserver"
	"github.com/sessionauth/caddy-sessionauth/session"
	"github.com/sessionauth/caddy-sessionauth/session/storetest"
)

func TestFileAccountsConformance(t *testing.T) {
	storetest.RunAccounts(t, func(t *testing.T, now func() time.Time) session.Store {
		return openFile(t, now, session.FileOptions{})
	})
}

// The memory store is the file store: it has the part too.
func TestMemoryAccountsConformance(t *testing.T) {
	storetest.RunAccounts(t, func(t *testing.T, now func() time.Time) session.Store {
		return newMemory(t, now)
	})
}

func TestRedisAccountsConformance(t *testing.T) {
	_, client := newRedisClient(t)
	storetest.RunAccounts(t, func(t *testing.T, now func() time.Time) session.Store {
		return session.NewRedis(client, "sa:", now)
	})
}

// The accounts part works as the least-privilege user (RedisACL), and
// Redis denies it nothing.
func TestRedisAccountsAsACLUser(t *testing.T) {
	srv, admin := newRedisClient(t)
	ctx := context.Background()
	args := []any{"ACL", "SETUSER", "gateway"}
	for _, a := range strings.Fields(fmt.Sprintf(session.RedisACL, "gw-pass")) {
		args = append(args, a)
	}
	if err := admin.Do(ctx, args...).Err(); err != nil {
		t.Fatal(err)
	}
	client := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{srv.Addr}, Username: "gateway", Password: "gw-pass"})
	t.Cleanup(func() { client.Close() })
	storetest.RunAccounts(t, func(t *testing.T, now func() time.Time) session.Store {
		return session.NewRedis(client, "sa:", now)
	})
	if denied, err := admin.Do(ctx, "ACL", "LOG").Slice(); err != nil || len(denied) != 0 {
		t.Fatalf("ACL denials: %v %v", denied, err)
	}
}

// On a 3-master cluster every account operation is one slot's script.
func TestRedisClusterAccountsConformance(t *testing.T) {
	c := redisserver.StartCluster(t, 3)
	client := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: c.Addrs()})
	t.Cleanup(func() { client.Close() })
	storetest.RunAccounts(t, func(t *testing.T, now func() time.Time) session.Store {
		return session.NewRedis(client, "sa:", now)
	})
}
