package session_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
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

// Accounts are on disk when the call returns: they are there after the
// file is opened again, and `caddy sessions salvage` copies them with
// their indices.
func TestFileAccountsSurviveReopenAndSalvage(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sessions.db")
	f, err := session.OpenFile(path, nil, session.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().UTC().Truncate(time.Millisecond)
	a := &session.Account{UserID: "ada", Email: "Ada@example.com", Stored: true, CreatedAt: at,
		Passkeys: []session.Passkey{{ID: []byte{0, 1, 0xff}, PublicKey: []byte{9}, SignCount: 3, AddedAt: at}}}
	if err := f.CreateAccount(ctx, a); err != nil {
		t.Fatal(err)
	}
	if _, err := f.UpdateAccount(ctx, "ada", func(x *session.Account) error { x.RecoveryCodes = []string{"h"}; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	check := func(path string) {
		t.Helper()
		g, err := session.OpenFile(path, nil, session.FileOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		got, err := g.AccountByPasskey(ctx, []byte{0, 1, 0xff})
		if err != nil || got.UserID != "ada" || got.Version != 2 || len(got.RecoveryCodes) != 1 || !got.CreatedAt.Equal(at) {
			t.Fatalf("%s: %+v %v", path, got, err)
		}
		if got, err := g.AccountByEmail(ctx, "ada@EXAMPLE.com"); err != nil || got.UserID != "ada" {
			t.Fatalf("%s: by email: %v", path, err)
		}
		if got, err := g.AccountByHandle(ctx, a.Handle); err != nil || got.UserID != "ada" {
			t.Fatalf("%s: by handle: %v", path, err)
		}
	}
	check(path)
	to := filepath.Join(t.TempDir(), "salvaged.db")
	rep, err := session.Salvage(path, to)
	if err != nil {
		t.Fatalf("salvage: %v (%+v)", err, rep)
	}
	check(to)
}

// On a frozen disk an account write gives up at the write deadline
// (ErrFileTimeout, a 503) like any other write, and is then there whole
// or not at all; once the disk answers, updates go on.
func TestFileAccountWriteDeadline(t *testing.T) {
	ctx := context.Background()
	f := openFile(t, nil, session.FileOptions{WriteTimeout: 50 * time.Millisecond})
	a := &session.Account{UserID: "ada", Email: "ada@example.com", RecoveryCodes: []string{"h1", "h2"}, CreatedAt: time.Now()}
	if err := f.CreateAccount(ctx, a); err != nil {
		t.Fatal(err)
	}
	release := session.HoldCommits()
	_, err := f.UpdateAccount(ctx, "ada", func(x *session.Account) error {
		x.RecoveryCodes = x.RecoveryCodes[1:]
		x.Email = "new@example.com"
		return nil
	})
	if !errors.Is(err, session.ErrFileTimeout) {
		release()
		t.Fatalf("an update on a frozen disk: %v", err)
	}
	if err := f.CreateAccount(ctx, &session.Account{UserID: "bob"}); !errors.Is(err, session.ErrFileTimeout) {
		release()
		t.Fatalf("a create on a frozen disk: %v", err)
	}
	release()
	got, err := f.UpdateAccount(ctx, "ada", func(*session.Account) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	whole := got.Version == 3 && len(got.RecoveryCodes) == 1 && got.Email == "new@example.com"
	none := got.Version == 2 && len(got.RecoveryCodes) == 2 && got.Email == "ada@example.com"
	if !whole && !none {
		t.Fatalf("half an update: %+v", got)
	}
	if byEmail, err := f.AccountByEmail(ctx, got.Email); err != nil || byEmail.UserID != "ada" {
		t.Fatalf("the email index disagrees with the record: %v", err)
	}
}
