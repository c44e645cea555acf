package sessionauth

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.uber.org/zap"

	"github.com/sessionauth/caddy-sessionauth/session"
	"github.com/sessionauth/caddy-sessionauth/session/storetest"
)

// flakyHook fails its first `fail` deliveries with a 500, then takes
// them; it keeps the bodies it got.
type flakyHook struct {
	url    string
	mu     sync.Mutex
	fail   int
	bodies []string
}

func newFlakyHook(t *testing.T, fail int) *flakyHook {
	fh := &flakyHook{fail: fail}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fh.mu.Lock()
		defer fh.mu.Unlock()
		fh.bodies = append(fh.bodies, string(body))
		if len(fh.bodies) <= fh.fail {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	t.Cleanup(srv.Close)
	fh.url = srv.URL + "/hook"
	return fh
}

func (fh *flakyHook) got() []string {
	fh.mu.Lock()
	defer fh.mu.Unlock()
	return append([]string(nil), fh.bodies...)
}

// deliveries are the delivery spans rec has ended.
func deliveries(rec *tracetest.SpanRecorder) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() == "session_auth.notify.deliver" {
			out = append(out, s)
		}
	}
	return out
}

func spanAttr(s sdktrace.ReadOnlySpan, key string) string {
	for _, a := range s.Attributes() {
		if string(a.Key) == key {
			return a.Value.String()
		}
	}
	return ""
}

// A notice queued by a traced request is delivered under that request's
// trace: the first attempt a child span of the request, a retry (the
// request's trace long closed) a new trace linked to it. The receiver
// never sees the trace context. Every store carries it in its outbox.
func TestDeliveryAttemptsAreSpansOfTheQueueingRequest(t *testing.T) {
	outboxStores(t, func(t *testing.T, st session.Store, clock *storetest.Clock) {
		hook := newFlakyHook(t, 1)
		d, _, _ := testDispatcher(t, st, clock, &Notify{URL: hook.url}, nil)
		n := &notifier{hook: &Notify{URL: hook.url}, store: st, logger: zap.NewNop(), tracers: d.useTracer}

		rec := tracetest.NewSpanRecorder()
		r, parent := tracedRequest(httptest.NewRequest("POST", "/.auth/logout", nil), rec)
		n.webhook(r, noticeRevoke, &session.Session{ID: "s1", UserID: "ada"}, clock.Now())
		parent.End()

		eventually(t, "the first, failed attempt", func() bool { return len(deliveries(rec)) == 1 })
		// The retry is due a backoff after the failure, by the clock.
		eventually(t, "the retry", func() bool { clock.Advance(retryBase); return len(deliveries(rec)) == 2 })

		spans := deliveries(rec)
		first, retry := spans[0], spans[1]
		want := parent.SpanContext()
		if first.Parent().SpanID() != want.SpanID() || first.SpanContext().TraceID() != want.TraceID() {
			t.Fatalf("first attempt: parent %v, want the request's span %v", first.Parent(), want)
		}
		if first.Status().Code.String() != "Error" || spanAttr(first, "session_auth.notify.attempt") != "1" ||
			spanAttr(first, "session_auth.notify.channel") != "webhook" || spanAttr(first, "session_auth.notify.event") != noticeRevoke {
			t.Fatalf("first attempt: status %v, attributes %v", first.Status(), first.Attributes())
		}
		if retry.Parent().IsValid() || retry.SpanContext().TraceID() == want.TraceID() {
			t.Fatalf("retry: parent %v in trace %v, want a trace of its own", retry.Parent(), retry.SpanContext().TraceID())
		}
		if l := retry.Links(); len(l) != 1 || l[0].SpanContext.SpanID() != want.SpanID() {
			t.Fatalf("retry: links %v, want the request's span", l)
		}
		if retry.Status().Code.String() == "Error" || spanAttr(retry, "session_auth.notify.attempt") != "2" {
			t.Fatalf("retry: status %v, attributes %v", retry.Status(), retry.Attributes())
		}
		for _, body := range hook.got() {
			var fields map[string]any
			if err := json.Unmarshal([]byte(body), &fields); err != nil {
				t.Fatal(err)
			}
			if _, ok := fields["trace"]; ok || strings.Contains(body, want.TraceID().String()) {
				t.Fatalf("the receiver got the trace context: %s", body)
			}
		}
	})
}

// A notice queued without a trace makes no span, even once a traced
// request has handed the dispatcher its tracer; a mail is traced too.
func TestUntracedNoticeMakesNoDeliverySpan(t *testing.T) {
	clock := storetest.NewClock()
	st, err := session.NewMemory(clock.Now, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	hook := newFlakyHook(t, 0)
	d, results, _ := testDispatcher(t, st, clock, &Notify{URL: hook.url}, nil)
	n := &notifier{hook: &Notify{URL: hook.url}, store: st, logger: zap.NewNop(), tracers: d.useTracer}
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	d.useTracer(tp)

	n.webhook(httptest.NewRequest("POST", "/.auth/logout", nil), noticeRevoke, &session.Session{ID: "s1", UserID: "ada"}, clock.Now())
	n.ended(context.Background(), []*session.Session{{ID: "s2", UserID: "ada"}}, clock.Now())
	eventually(t, "both delivered", func() bool { return results("delivered") == 2 })
	if got := deliveries(rec); len(got) != 0 {
		t.Fatalf("%d delivery spans for untraced notices", len(got))
	}

	// The mail channel: a traced notice to a dead mail server is a
	// failed attempt's span under the request.
	del := session.Delivery{Target: mailTarget, Notice: session.Notice{Event: noticeNewLogin}}
	ctx, parent := tp.Tracer("caddy").Start(httptest.NewRequest("GET", "/", nil).Context(), "request")
	carrier := propagation.MapCarrier{}
	traceContext.Inject(ctx, carrier)
	del.Notice.Trace = carrier.Get("traceparent")
	sp := d.deliverySpan(del)
	endDeliverySpan(sp, io.ErrUnexpectedEOF)
	parent.End()
	got := deliveries(rec)
	if len(got) != 1 || got[0].Parent().SpanID() != parent.SpanContext().SpanID() || spanAttr(got[0], "session_auth.notify.channel") != "mail" {
		t.Fatalf("mail attempt: spans %v", spanNames(got))
	}
}

// Revoke notices, queued together when sessions end during a traced
// request (the sessions page, a policy), are delivered under its trace.
func TestEndedSessionsNoticesFollowTheRequestsTrace(t *testing.T) {
	clock := storetest.NewClock()
	st, err := session.NewMemory(clock.Now, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	hook := newFlakyHook(t, 0)
	d, results, _ := testDispatcher(t, st, clock, &Notify{URL: hook.url}, nil)
	n := &notifier{hook: &Notify{URL: hook.url}, store: st, logger: zap.NewNop(), tracers: d.useTracer}
	rec := tracetest.NewSpanRecorder()
	r, parent := tracedRequest(httptest.NewRequest("POST", "/.auth/sessions/s1/revoke", nil), rec)
	n.ended(r.Context(), []*session.Session{{ID: "s1", UserID: "ada"}, {ID: "s2", UserID: "ada"}}, clock.Now())
	parent.End()
	eventually(t, "both delivered", func() bool { return results("delivered") == 2 })
	eventually(t, "both spans ended", func() bool { return len(deliveries(rec)) == 2 })
	for _, sp := range deliveries(rec) {
		if sp.Parent().SpanID() != parent.SpanContext().SpanID() || spanAttr(sp, "session_auth.notify.event") != noticeRevoke {
			t.Fatalf("revoke notice's delivery: parent %v, attributes %v", sp.Parent(), sp.Attributes())
		}
	}
}
