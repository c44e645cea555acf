package session_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sessionauth/caddy-sessionauth/session"
)

// commandLog records every command the client sends, pipelined or not.
type commandLog struct {
	mu   sync.Mutex
	cmds [][]any
}

func (h *commandLog) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *commandLog) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.mu.Lock()
		h.cmds = append(h.cmds, cmd.Args())
		h.mu.Unlock()
		return next(ctx, cmd)
	}
}
func (h *commandLog) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.mu.Lock()
		for _, c := range cmds {
			h.cmds = append(h.cmds, c.Args())
		}
		h.mu.Unlock()
		return next(ctx, cmds)
	}
}

func (h *commandLog) take() [][]any {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := h.cmds
	h.cmds = nil
	return out
}

// The console's counters cost no command of their own: a sign-in, a
// revocation and a failed sign-in send the same commands as before,
// and the counters are written only inside their scripts, which name the
// stats hash among their keys.
func TestRedisCountersRideInTheScripts(t *testing.T) {
	_, client := newRedisClient(t)
	log := &commandLog{}
	client.AddHook(log)
	st := session.NewRedis(client, "sa:", nil)
	ctx := context.Background()
	p := session.Policy{Lifetime: time.Hour, IdleTimeout: time.Hour, TouchInterval: time.Minute, Retention: time.Hour}
	now := time.Now()
	// Twice, for two users: the first round opens the connections and
	// loads the scripts; the second is what every request sends.
	for round, user := range []string{"dave", "carol"} {
		id, _, hash, _ := session.LegacyCredential(user)
		s := &session.Session{ID: id, UserID: user, TokenHash: hash, IP: "192.0.2.1", LoginIP: "192.0.2.1", CreatedAt: now, LastActiveAt: now}
		steps := []struct {
			name string
			do   func() error
			want string // the commands, by name
		}{
			{"sign-in", func() error { _, err := st.Create(ctx, s, p, session.Limit{}); return err },
				"zrange evalsha zadd zremrangebyscore pexpire"}, // the index read, the script, the IP index
			{"failed sign-in", func() error {
				return st.Record(ctx, session.Event{Type: session.EventLoginFailed, At: now, UserID: user}, p)
			}, "evalsha"},
			{"revocation", func() error { _, err := st.End(ctx, id, now, session.EndRevoked, session.ActorAdmin, p); return err },
				"hget evalsha publish"}, // the owner, the script, the caches' channel
		}
		for _, step := range steps {
			if err := step.do(); err != nil {
				t.Fatalf("%s: %v", step.name, err)
			}
			var names []string
			for _, args := range log.take() {
				name := strings.ToLower(fmt.Sprint(args[0]))
				if name == "eval" || name == "evalsha" {
					if !strings.Contains(fmt.Sprint(args), "sa:{stats}:n") {
						t.Errorf("%s: a script without the stats hash among its keys: %v", step.name, args[:4])
					}
				} else if strings.Contains(fmt.Sprint(args), "stats") {
					t.Errorf("%s: the counters written outside a script: %v", step.name, args)
				}
				names = append(names, name)
			}
			if got := strings.Join(names, " "); round == 1 && got != step.want {
				t.Errorf("%s sends %q, want %q", step.name, got, step.want)
			}
		}
	}
	got, err := st.Stats(ctx, now, p)
	if err != nil {
		t.Fatal(err)
	}
	last := got.Hourly[len(got.Hourly)-1]
	if last.SignIns != 2 || last.FailedSignIns != 2 || last.Revocations != 2 {
		t.Fatalf("this hour: %+v", last)
	}
}
