package session

import (
	"context"
	"sync"
	"time"
)

// ManyEnder is a store that ends the sessions of many users in one
// operation: the admin API's "revoke everyone" goes through the users a
// batch at a time rather than a store operation (a file store's fsync)
// per user.
type ManyEnder interface {
	// EndUsers ends the active sessions of each of users, as EndUser
	// does for one, and returns them.
	EndUsers(ctx context.Context, users []string, at time.Time, reason, actor string, p Policy) ([]*Session, error)
}

// EndUsers ends the active sessions of each of users: in one operation
// where st can, else with EndUser for a few users at a time.
func EndUsers(ctx context.Context, st Store, users []string, at time.Time, reason, actor string, p Policy) ([]*Session, error) {
	if me, ok := unwrap(st).(ManyEnder); ok {
		return me.EndUsers(ctx, users, at, reason, actor, p)
	}
	var (
		mu    sync.Mutex
		ended []*Session
		first error
		wg    sync.WaitGroup
	)
	work := make(chan string)
	for w := 0; w < 16; w++ { // round trips overlap: a Redis store waits on the network
		wg.Add(1)
		go func() {
			defer wg.Done()
			for u := range work {
				out, err := st.EndUser(ctx, u, "", at, reason, actor, p)
				mu.Lock()
				ended = append(ended, out...)
				if err != nil && first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	for _, u := range users {
		work <- u
	}
	close(work)
	wg.Wait()
	return ended, first
}

// ManyEnqueuer is an outbox that queues many notices for one target in
// one operation.
type ManyEnqueuer interface {
	// EnqueueMany queues as many of ns for target as its channel has
	// room for, in order, and says how many.
	EnqueueMany(ctx context.Context, target string, ns []Notice) (int, error)
}

// EnqueueMany queues ns for target: in one operation where ob can, else
// one by one. It says how many were queued; the rest found the channel
// full (or the store failing, then err says so).
func EnqueueMany(ctx context.Context, ob Outbox, target string, ns []Notice) (int, error) {
	if me, ok := unwrap(ob).(ManyEnqueuer); ok {
		return me.EnqueueMany(ctx, target, ns)
	}
	queued := 0
	for _, n := range ns {
		switch err := ob.Enqueue(ctx, target, n); {
		case err == nil:
			queued++
		case err != ErrOutboxFull:
			return queued, err
		}
	}
	return queued, nil
}

// unwrap finds the store inside wrappers that embed it (and say so with
// Unwrap), so that what the store can do beyond Store is found.
func unwrap(v any) any {
	for {
		w, ok := v.(interface{ Unwrap() Store })
		if !ok {
			return v
		}
		v = w.Unwrap()
	}
}
