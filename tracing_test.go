package sessionauth

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// tracedRequest is r under a span of its own, as Caddy's `tracing`
// directive would hand it to the handler.
func tracedRequest(r *http.Request, rec *tracetest.SpanRecorder) (*http.Request, trace.Span) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	ctx, sp := tp.Tracer("caddy").Start(r.Context(), "request")
	return r.WithContext(ctx), sp
}

func spanNames(spans []sdktrace.ReadOnlySpan) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name())
	}
	return out
}

// A traced request's store call is a span under it, and the gateway's
// log lines about that request carry its trace id; an untraced request
// makes no span.
func TestTracedRequestHasStoreSpansAndTraceIDsInLogs(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	h, _ := testHandler(t, nil)
	h.logger = zap.New(core)
	wireParts(h)
	c := signIn(t, h, "alice")

	rec := tracetest.NewSpanRecorder()
	serve(t, h, get("/", c), &upstream{})
	if n := len(rec.Ended()); n != 0 {
		t.Fatalf("%d spans for an untraced request", n)
	}

	r, parent := tracedRequest(get("/", c), rec)
	serve(t, h, r, &upstream{})
	bad := get("/", &http.Cookie{Name: "session", Value: c.Value[:33] + strings.Repeat("B", 43)})
	serve(t, h, bad.WithContext(r.Context()), &upstream{})
	parent.End()
	var validate sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() == "session_auth.store.validate" {
			validate = s
		}
	}
	if validate == nil || validate.Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Fatalf("spans %v: want session_auth.store.validate under the request", spanNames(rec.Ended()))
	}
	traceID := parent.SpanContext().TraceID().String()
	found := false
	for _, e := range logs.FilterMessage("session token rejected: matches no session").All() {
		found = found || e.ContextMap()["trace_id"] == traceID
	}
	if !found {
		t.Fatalf("the rejected token's log line has no trace_id %s: %v", traceID, logs.All())
	}
}

// A call to an OpenID provider is a span named by its path, with no
// query (which can carry a code); untraced calls make none.
func TestProviderCallsAreSpans(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	client := &http.Client{Transport: tracedTransport{http.DefaultTransport}}
	rec := tracetest.NewSpanRecorder()

	req, _ := http.NewRequest("GET", srv.URL+"/.well-known/openid-configuration?code=secret", nil)
	if res, err := client.Do(req); err == nil {
		res.Body.Close()
	}
	if n := len(rec.Ended()); n != 0 {
		t.Fatalf("%d spans for an untraced call", n)
	}
	traced, parent := tracedRequest(req, rec)
	res, err := client.Do(traced)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	parent.End()
	spans := rec.Ended()
	if len(spans) != 2 || spans[0].Name() != "session_auth.oidc GET /.well-known/openid-configuration" {
		t.Fatalf("spans %v: want the provider call under the request", spanNames(spans))
	}
	for _, a := range spans[0].Attributes() {
		if strings.Contains(a.Value.String(), "secret") {
			t.Fatalf("span attribute %s carries the query: %s", a.Key, a.Value.String())
		}
	}
}

func TestLogWithoutTraceIsTheHandlersLogger(t *testing.T) {
	h := &Handler{logger: zap.NewNop()}
	if h.log(context.Background()) != h.logger {
		t.Fatal("an untraced request's logger is not the handler's own")
	}
}
