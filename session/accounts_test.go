package session_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"sync"
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

// Every operation of Accounts has a timed version of its own in Timed.
func TestTimedCoversEveryAccountsOperation(t *testing.T) {
	part := reflect.TypeOf((*session.Accounts)(nil)).Elem()
	timed := reflect.TypeOf(&session.Timed{})
	for i := range part.NumMethod() {
		name := part.Method(i).Name
		m, ok := timed.MethodByName(name)
		if !ok {
			t.Errorf("Timed has no %s", name)
			continue
		}
		file, _ := runtime.FuncForPC(m.Func.Pointer()).FileLine(m.Func.Pointer())
		if !strings.HasSuffix(file, "timed.go") {
			t.Errorf("Timed.%s is not timed (%s)", name, file)
		}
	}
}

// The suite through Timed: it passes each call on, bounded and observed
// by name.
func TestTimedAccountsConformance(t *testing.T) {
	var mu sync.Mutex
	ops := map[string]int{}
	storetest.RunAccounts(t, func(t *testing.T, now func() time.Time) session.Store {
		return &session.Timed{Store: openFile(t, now, session.FileOptions{}), Kind: "file", Timeout: 5 * time.Second,
			Observe: func(op string, _ time.Duration, _ error) { mu.Lock(); ops[op]++; mu.Unlock() }}
	})
	for _, op := range []string{"create_account", "get_account", "account_by_email", "account_by_handle",
		"account_by_passkey", "list_accounts", "update_account", "delete_account"} {
		if ops[op] == 0 {
			t.Errorf("no %s observed: %v", op, ops)
		}
	}
}

// plain is a store without the accounts part.
type plain struct{ session.Store }

// Timed over a store that keeps no accounts answers ErrNoAccounts, and
// observes it.
func TestTimedWithoutAccounts(t *testing.T) {
	var observed []error
	st := &session.Timed{Store: plain{}, Observe: func(_ string, _ time.Duration, err error) { observed = append(observed, err) }}
	ctx := context.Background()
	_, errGet := st.GetAccount(ctx, "alice")
	errCreate := st.CreateAccount(ctx, &session.Account{UserID: "alice"})
	_, _, errList := st.ListAccounts(ctx, "", 10)
	for _, err := range append([]error{errGet, errCreate, errList}, observed...) {
		if !errors.Is(err, session.ErrNoAccounts) {
			t.Fatalf("got %v, want ErrNoAccounts", err)
		}
	}
	if len(observed) != 3 {
		t.Fatalf("observed %d calls, want 3", len(observed))
	}
}
