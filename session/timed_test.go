package session_test

import (
	"context"
	"errors"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/sessionauth/caddy-sessionauth/session"
)

// Every operation of Store has a timed version of its own: a method
// that Timed only inherits from the store it embeds would go untimed,
// unbounded and untraced. Inherited methods are compiler-made wrappers.
func TestTimedCoversEveryOperation(t *testing.T) {
	store := reflect.TypeOf((*session.Store)(nil)).Elem()
	timed := reflect.TypeOf(&session.Timed{})
	for i := range store.NumMethod() {
		name := store.Method(i).Name
		if name == "Close" {
			continue // nothing to time
		}
		m, _ := timed.MethodByName(name)
		file, _ := runtime.FuncForPC(m.Func.Pointer()).FileLine(m.Func.Pointer())
		if !strings.HasSuffix(file, "timed.go") {
			t.Errorf("Timed.%s is inherited (%s), not timed", name, file)
		}
	}
}

func TestTimedObservesOperationsByName(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	mem := newMemory(t, func() time.Time { return now })
	var ops []string
	st := &session.Timed{Store: mem, Kind: "memory",
		Observe: func(op string, _ time.Duration, _ error) { ops = append(ops, op) }}
	ctx := context.Background()
	id, _, hash, err := st.NewCredential(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	s := &session.Session{ID: id, UserID: "alice", TokenHash: hash, CreatedAt: now, LastActiveAt: now}
	p := session.Policy{Lifetime: time.Hour, IdleTimeout: time.Hour}
	if _, err := st.Create(ctx, s, p, session.Limit{}); err != nil {
		t.Fatal(err)
	}
	if v, err := st.Validate(ctx, id, hash, "192.0.2.1", now, p); err != nil || v.Status != session.Valid {
		t.Fatalf("validate: %v %v", v.Status, err)
	}
	if _, err := st.Get(ctx, "no-such-session"); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("get: %v", err)
	}
	want := []string{"new_credential", "create", "validate", "get"}
	if !reflect.DeepEqual(ops, want) {
		t.Fatalf("observed %v, want %v", ops, want)
	}
}

// stuck never answers: a store behind a dead network.
type stuck struct{ session.Store }

func (stuck) Validate(ctx context.Context, _ string, _ [32]byte, _ string, _ time.Time, _ session.Policy) (session.Validation, error) {
	<-ctx.Done()
	return session.Validation{}, ctx.Err()
}

func TestTimedBoundsEachOperation(t *testing.T) {
	var observed error
	st := &session.Timed{Store: stuck{}, Timeout: 10 * time.Millisecond,
		Observe: func(_ string, _ time.Duration, err error) { observed = err }}
	_, err := st.Validate(context.Background(), "id", [32]byte{}, "", time.Time{}, session.Policy{})
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(observed, context.DeadlineExceeded) {
		t.Fatalf("err %v, observed %v: want the deadline", err, observed)
	}
}

func TestTimedSpansOnlyUnderATrace(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	mem := newMemory(t, func() time.Time { return now })
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	st := &session.Timed{Store: mem, Kind: "memory"}

	if _, err := st.Get(context.Background(), "untraced"); !errors.Is(err, session.ErrNotFound) {
		t.Fatal(err)
	}
	if n := len(rec.Ended()); n != 0 {
		t.Fatalf("%d spans without a trace, want none", n)
	}

	ctx, parent := tp.Tracer("test").Start(context.Background(), "request")
	if _, err := st.Get(ctx, "traced"); !errors.Is(err, session.ErrNotFound) {
		t.Fatal(err)
	}
	parent.End()
	spans := rec.Ended()
	if len(spans) != 2 {
		t.Fatalf("%d spans, want the store call and its request", len(spans))
	}
	child := spans[0]
	if child.Name() != "session_auth.store.get" || child.Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Fatalf("span %q under %v, want session_auth.store.get under the request", child.Name(), child.Parent().SpanID())
	}
	attrs := map[string]string{}
	for _, a := range child.Attributes() {
		attrs[string(a.Key)] = a.Value.String()
		if strings.Contains(a.Value.String(), "traced") {
			t.Errorf("span attribute %s carries the session id", a.Key)
		}
	}
	if attrs["session_auth.store"] != "memory" {
		t.Fatalf("attributes %v, want the store kind", attrs)
	}
}
