package session

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Timed is a Store whose every operation is bounded and measured in one
// place: it gets Timeout (none when zero: an embedded store has nothing
// to wait for on the network, and bounds its own writes), Observe is told
// how long it took, and under a trace (Caddy's `tracing`) it is a child
// span named after the operation. The caller's code then carries no
// timeout of its own around store calls.
type Timed struct {
	Store
	// Kind names the backing store in spans ("file", "memory", "redis").
	Kind string
	// Timeout bounds each operation; zero leaves the caller's context.
	Timeout time.Duration
	// Observe, when set, is told each operation's name, duration and error.
	Observe func(op string, took time.Duration, err error)
}

// Unwrap is the store itself, for what it can do beyond Store.
func (t *Timed) Unwrap() Store { return t.Store }

// tracerName is the instrumentation scope of the store's spans.
const tracerName = "github.com/sessionauth/caddy-sessionauth/session"

// begin starts op: its context (bounded by extra+Timeout) and the
// function that ends it with the operation's error.
func (t *Timed) begin(ctx context.Context, op string, extra time.Duration) (context.Context, func(error)) {
	start := time.Now()
	cancel := context.CancelFunc(func() {})
	if t.Timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, t.Timeout+extra)
	}
	var span trace.Span
	if parent := trace.SpanFromContext(ctx); parent.SpanContext().IsValid() {
		ctx, span = parent.TracerProvider().Tracer(tracerName).Start(ctx, "session_auth.store."+op,
			trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(attribute.String("session_auth.store", t.Kind)))
	}
	return ctx, func(err error) {
		cancel()
		if t.Observe != nil {
			t.Observe(op, time.Since(start), err)
		}
		if span != nil {
			if err != nil && err != ErrNotFound {
				span.RecordError(err)
				span.SetStatus(codes.Error, err.Error())
			}
			span.End()
		}
	}
}

// NewCredential is Store.NewCredential, timed.
func (t *Timed) NewCredential(ctx context.Context, userID string) (string, string, [32]byte, error) {
	ctx, end := t.begin(ctx, "new_credential", 0)
	id, cookie, hash, err := t.Store.NewCredential(ctx, userID)
	end(err)
	return id, cookie, hash, err
}

// Create is Store.Create, timed.
func (t *Timed) Create(ctx context.Context, s *Session, p Policy, lim Limit) ([]*Session, error) {
	ctx, end := t.begin(ctx, "create", 0)
	ended, err := t.Store.Create(ctx, s, p, lim)
	end(err)
	return ended, err
}

// Discard is Store.Discard, timed.
func (t *Timed) Discard(ctx context.Context, s *Session, p Policy) ([]*Session, error) {
	ctx, end := t.begin(ctx, "discard", 0)
	ended, err := t.Store.Discard(ctx, s, p)
	end(err)
	return ended, err
}

// Validate is Store.Validate, timed.
func (t *Timed) Validate(ctx context.Context, id string, hash [32]byte, ip string, now time.Time, p Policy) (Validation, error) {
	ctx, end := t.begin(ctx, "validate", 0)
	v, err := t.Store.Validate(ctx, id, hash, ip, now, p)
	end(err)
	return v, err
}

// Sight is Store.Sight, timed.
func (t *Timed) Sight(ctx context.Context, id string, sg Sighting, at time.Time, p Policy) (*Session, error) {
	ctx, end := t.begin(ctx, "sight", 0)
	s, err := t.Store.Sight(ctx, id, sg, at, p)
	end(err)
	return s, err
}

// StepUp is Store.StepUp, timed.
func (t *Timed) StepUp(ctx context.Context, id string, pr Proof, p Policy) (*Session, error) {
	ctx, end := t.begin(ctx, "step_up", 0)
	s, err := t.Store.StepUp(ctx, id, pr, p)
	end(err)
	return s, err
}

// Get is Store.Get, timed.
func (t *Timed) Get(ctx context.Context, id string) (*Session, error) {
	ctx, end := t.begin(ctx, "get", 0)
	s, err := t.Store.Get(ctx, id)
	end(err)
	return s, err
}

// List is Store.List, timed.
func (t *Timed) List(ctx context.Context, userID string, now time.Time, p Policy) ([]*Session, error) {
	ctx, end := t.begin(ctx, "list", 0)
	ss, err := t.Store.List(ctx, userID, now, p)
	end(err)
	return ss, err
}

// End is Store.End, timed.
func (t *Timed) End(ctx context.Context, id string, at time.Time, reason, actor string, p Policy) (*Session, error) {
	ctx, end := t.begin(ctx, "end", 0)
	s, err := t.Store.End(ctx, id, at, reason, actor, p)
	end(err)
	return s, err
}

// EndUser is Store.EndUser, timed.
func (t *Timed) EndUser(ctx context.Context, userID, exceptID string, at time.Time, reason, actor string, p Policy) ([]*Session, error) {
	ctx, end := t.begin(ctx, "end_user", 0)
	ss, err := t.Store.EndUser(ctx, userID, exceptID, at, reason, actor, p)
	end(err)
	return ss, err
}

// EndWithTokens is Store.EndWithTokens, timed.
func (t *Timed) EndWithTokens(ctx context.Context, id string, at time.Time, reason, actor string, p Policy) ([]*Session, error) {
	ctx, end := t.begin(ctx, "end_with_tokens", 0)
	ss, err := t.Store.EndWithTokens(ctx, id, at, reason, actor, p)
	end(err)
	return ss, err
}

// ByIP is Store.ByIP, timed.
func (t *Timed) ByIP(ctx context.Context, ip string, now time.Time, p Policy, after string, limit int) ([]*Session, string, error) {
	ctx, end := t.begin(ctx, "by_ip", 0)
	page, next, err := t.Store.ByIP(ctx, ip, now, p, after, limit)
	end(err)
	return page, next, err
}

// MarkChecked is Store.MarkChecked, timed.
func (t *Timed) MarkChecked(ctx context.Context, id string, was, at time.Time, sealed string) (bool, error) {
	ctx, end := t.begin(ctx, "mark_checked", 0)
	ok, err := t.Store.MarkChecked(ctx, id, was, at, sealed)
	end(err)
	return ok, err
}

// SetRoles is Store.SetRoles, timed.
func (t *Timed) SetRoles(ctx context.Context, id, roles string) (*Session, error) {
	ctx, end := t.begin(ctx, "set_roles", 0)
	s, err := t.Store.SetRoles(ctx, id, roles)
	end(err)
	return s, err
}

// Users is Store.Users, timed. It walks the whole store, so it gets no
// deadline beyond the caller's.
func (t *Timed) Users(ctx context.Context) ([]string, error) {
	_, end := t.begin(ctx, "users", 0)
	us, err := t.Store.Users(ctx)
	end(err)
	return us, err
}

// Stats is Store.Stats, timed.
func (t *Timed) Stats(ctx context.Context, now time.Time, p Policy) (*Stats, error) {
	ctx, end := t.begin(ctx, "stats", 0)
	st, err := t.Store.Stats(ctx, now, p)
	end(err)
	return st, err
}

// Hit is Store.Hit, timed.
func (t *Timed) Hit(ctx context.Context, key string, window time.Duration, now time.Time) (int64, time.Duration, error) {
	ctx, end := t.begin(ctx, "hit", 0)
	n, reset, err := t.Store.Hit(ctx, key, window, now)
	end(err)
	return n, reset, err
}

// Refund is Store.Refund, timed.
func (t *Timed) Refund(ctx context.Context, key string, now time.Time) error {
	ctx, end := t.begin(ctx, "refund", 0)
	err := t.Store.Refund(ctx, key, now)
	end(err)
	return err
}

// Record is Store.Record, timed.
func (t *Timed) Record(ctx context.Context, e Event, p Policy) error {
	ctx, end := t.begin(ctx, "record", 0)
	err := t.Store.Record(ctx, e, p)
	end(err)
	return err
}

// Events is Store.Events, timed.
func (t *Timed) Events(ctx context.Context, userID string, since time.Time, limit int) ([]Event, error) {
	ctx, end := t.begin(ctx, "events", 0)
	es, err := t.Store.Events(ctx, userID, since, limit)
	end(err)
	return es, err
}

// Enqueue is Store.Enqueue, timed.
func (t *Timed) Enqueue(ctx context.Context, target string, n Notice) error {
	ctx, end := t.begin(ctx, "enqueue", 0)
	err := t.Store.Enqueue(ctx, target, n)
	end(err)
	return err
}

// Claim is Store.Claim, timed; its deadline includes the wait for a
// delivery (block), and so does its duration.
func (t *Timed) Claim(ctx context.Context, consumer, target string, max int, block time.Duration) ([]Delivery, error) {
	ctx, end := t.begin(ctx, "claim", block)
	ds, err := t.Store.Claim(ctx, consumer, target, max, block)
	end(err)
	return ds, err
}

// Ack is Store.Ack, timed.
func (t *Timed) Ack(ctx context.Context, d Delivery) error {
	ctx, end := t.begin(ctx, "ack", 0)
	err := t.Store.Ack(ctx, d)
	end(err)
	return err
}

// Retry is Store.Retry, timed.
func (t *Timed) Retry(ctx context.Context, d Delivery, at time.Time) error {
	ctx, end := t.begin(ctx, "retry", 0)
	err := t.Store.Retry(ctx, d, at)
	end(err)
	return err
}

// Targets is Store.Targets, timed.
func (t *Timed) Targets(ctx context.Context) ([]string, error) {
	ctx, end := t.begin(ctx, "targets", 0)
	ts, err := t.Store.Targets(ctx)
	end(err)
	return ts, err
}

// Stash is Store.Stash, timed.
func (t *Timed) Stash(ctx context.Context, key string, value []byte, ttl time.Duration, now time.Time) error {
	ctx, end := t.begin(ctx, "stash", 0)
	err := t.Store.Stash(ctx, key, value, ttl, now)
	end(err)
	return err
}

// Take is Store.Take, timed.
func (t *Timed) Take(ctx context.Context, key string, now time.Time) ([]byte, error) {
	ctx, end := t.begin(ctx, "take", 0)
	v, err := t.Store.Take(ctx, key, now)
	end(err)
	return v, err
}

// Link is Store.Link, timed.
func (t *Timed) Link(ctx context.Context, key, member string, ttl time.Duration, now time.Time) error {
	ctx, end := t.begin(ctx, "link", 0)
	err := t.Store.Link(ctx, key, member, ttl, now)
	end(err)
	return err
}

// Linked is Store.Linked, timed.
func (t *Timed) Linked(ctx context.Context, key string, now time.Time) ([]string, error) {
	ctx, end := t.begin(ctx, "linked", 0)
	ms, err := t.Store.Linked(ctx, key, now)
	end(err)
	return ms, err
}

// accounts is the accounts part of the store Timed wraps. Timed has the
// part whatever it wraps; a store without it answers ErrNoAccounts.
func (t *Timed) accounts() (Accounts, error) {
	if a, ok := As[Accounts](t.Store); ok { // under the handler's pool entry too
		return a, nil
	}
	return nil, ErrNoAccounts
}

// CreateAccount is Accounts.CreateAccount, timed.
func (t *Timed) CreateAccount(ctx context.Context, a *Account) error {
	ctx, end := t.begin(ctx, "create_account", 0)
	as, err := t.accounts()
	if err == nil {
		err = as.CreateAccount(ctx, a)
	}
	end(err)
	return err
}

// GetAccount is Accounts.GetAccount, timed.
func (t *Timed) GetAccount(ctx context.Context, userID string) (*Account, error) {
	return t.oneAccount(ctx, "get_account", func(ctx context.Context, as Accounts) (*Account, error) {
		return as.GetAccount(ctx, userID)
	})
}

// AccountByEmail is Accounts.AccountByEmail, timed.
func (t *Timed) AccountByEmail(ctx context.Context, email string) (*Account, error) {
	return t.oneAccount(ctx, "account_by_email", func(ctx context.Context, as Accounts) (*Account, error) {
		return as.AccountByEmail(ctx, email)
	})
}

// AccountByHandle is Accounts.AccountByHandle, timed.
func (t *Timed) AccountByHandle(ctx context.Context, handle []byte) (*Account, error) {
	return t.oneAccount(ctx, "account_by_handle", func(ctx context.Context, as Accounts) (*Account, error) {
		return as.AccountByHandle(ctx, handle)
	})
}

// AccountByPasskey is Accounts.AccountByPasskey, timed.
func (t *Timed) AccountByPasskey(ctx context.Context, credentialID []byte) (*Account, error) {
	return t.oneAccount(ctx, "account_by_passkey", func(ctx context.Context, as Accounts) (*Account, error) {
		return as.AccountByPasskey(ctx, credentialID)
	})
}

// UpdateAccount is Accounts.UpdateAccount, timed (fn's time included).
func (t *Timed) UpdateAccount(ctx context.Context, userID string, fn func(*Account) error) (*Account, error) {
	return t.oneAccount(ctx, "update_account", func(ctx context.Context, as Accounts) (*Account, error) {
		return as.UpdateAccount(ctx, userID, fn)
	})
}

// oneAccount times op, an operation that answers one account.
func (t *Timed) oneAccount(ctx context.Context, op string, fn func(context.Context, Accounts) (*Account, error)) (*Account, error) {
	ctx, end := t.begin(ctx, op, 0)
	var a *Account
	as, err := t.accounts()
	if err == nil {
		a, err = fn(ctx, as)
	}
	end(err)
	return a, err
}

// ListAccounts is Accounts.ListAccounts, timed.
func (t *Timed) ListAccounts(ctx context.Context, after string, limit int) ([]*Account, string, error) {
	ctx, end := t.begin(ctx, "list_accounts", 0)
	var page []*Account
	var next string
	as, err := t.accounts()
	if err == nil {
		page, next, err = as.ListAccounts(ctx, after, limit)
	}
	end(err)
	return page, next, err
}

// DeleteAccount is Accounts.DeleteAccount, timed.
func (t *Timed) DeleteAccount(ctx context.Context, userID string) error {
	ctx, end := t.begin(ctx, "delete_account", 0)
	as, err := t.accounts()
	if err == nil {
		err = as.DeleteAccount(ctx, userID)
	}
	end(err)
	return err
}

// As finds a T among s and the stores it wraps (those that say so with
// Unwrap): what a store can do beyond Store, such as *File's backup.
func As[T any](s Store) (T, bool) {
	for {
		if v, ok := s.(T); ok {
			return v, true
		}
		w, ok := s.(interface{ Unwrap() Store })
		if !ok {
			var zero T
			return zero, false
		}
		s = w.Unwrap()
	}
}

var (
	_ Store    = (*Timed)(nil)
	_ Accounts = (*Timed)(nil)
)
