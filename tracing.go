package sessionauth

import (
	"context"
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/sessionauth/caddy-sessionauth/geo"
)

// tracerName is the instrumentation scope of the gateway's own spans.
const tracerName = "github.com/sessionauth/caddy-sessionauth"

// childSpan starts a span under the request's (Caddy's `tracing`
// directive starts it), named session_auth.<name>. Without a span in ctx
// it starts nothing: the untraced path pays one context lookup.
func childSpan(ctx context.Context, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	parent := trace.SpanFromContext(ctx)
	if !parent.SpanContext().IsValid() {
		return ctx, trace.SpanFromContext(context.Background()) // a span that does nothing
	}
	return parent.TracerProvider().Tracer(tracerName).Start(ctx, "session_auth."+name,
		trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
}

// endSpan ends sp, marked failed when err is not nil.
func endSpan(sp trace.Span, err error) {
	if err != nil {
		sp.RecordError(err)
		sp.SetStatus(codes.Error, err.Error())
	}
	sp.End()
}

// traceFields are the trace and span ids of ctx's span, for the
// gateway's own log lines (the access log has them from Caddy); none
// when the request is not traced.
func traceFields(ctx context.Context) []zap.Field {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return nil
	}
	return []zap.Field{zap.String("trace_id", sc.TraceID().String()), zap.String("span_id", sc.SpanID().String())}
}

// tracedTransport makes each call to an OpenID provider (discovery,
// code exchange, refresh, UserInfo) a child span of the request that
// made it, named by its host and path: never its query or body, which
// carry codes and tokens.
type tracedTransport struct{ next http.RoundTripper }

func (t tracedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, sp := childSpan(req.Context(), "oidc "+req.Method+" "+req.URL.Path,
		attribute.String("server.address", req.URL.Host), attribute.String("url.path", req.URL.Path))
	res, err := t.next.RoundTrip(req.WithContext(ctx))
	if err == nil {
		sp.SetAttributes(attribute.Int("http.response.status_code", res.StatusCode))
		if res.StatusCode >= 500 {
			sp.SetStatus(codes.Error, res.Status)
		}
	}
	endSpan(sp, err)
	return res, err
}

// log is the handler's logger for a request's lines: with the trace's
// ids when the request is traced, so that a log line finds its trace.
func (h *Handler) log(ctx context.Context) *zap.Logger {
	if f := traceFields(ctx); f != nil {
		return h.logger.With(f...)
	}
	return h.logger
}

// place is the GeoIP location of ip, a span of its own when traced.
func (h *Handler) place(ctx context.Context, ip string) geo.Location {
	if h.geo == nil {
		return geo.Location{}
	}
	_, sp := childSpan(ctx, "geoip")
	defer sp.End()
	return h.geo.Lookup(ip)
}
