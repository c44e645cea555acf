package sessionauth

import (
	"context"
	"net/http"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/sessionauth/caddy-sessionauth/session"
)

// A notice is delivered later, by the dispatcher, outside the request
// that queued it: the notice carries that request's trace context (W3C
// traceparent) in the outbox, so that each delivery attempt is a span in
// the same trace.

var traceContext = propagation.TraceContext{}

// traceNotice records in n the trace context of the request r that
// queues it, and hands the request's tracer provider to the dispatcher
// (Caddy's tracing keeps its own, not OpenTelemetry's global one).
// Nothing when r is nil or not traced.
func (nt *notifier) traceNotice(r *http.Request, n *session.Notice) {
	if r != nil {
		nt.traceNoticeIn(r.Context(), n)
	}
}

// traceNoticeIn is traceNotice for the request context ctx; nil when
// no request ended the sessions (a sweep, the admin API).
func (nt *notifier) traceNoticeIn(ctx context.Context, n *session.Notice) {
	if ctx == nil {
		return
	}
	sp := trace.SpanFromContext(ctx)
	if !sp.SpanContext().IsValid() {
		return
	}
	carrier := propagation.MapCarrier{}
	traceContext.Inject(ctx, carrier)
	n.Trace = carrier.Get("traceparent")
	if nt.tracers != nil {
		nt.tracers(sp.TracerProvider())
	}
}

// useTracer keeps tp, the tracer provider of the newest traced request
// that queued a notice, for the delivery spans.
func (d *dispatcher) useTracer(tp trace.TracerProvider) {
	d.tracer.Store(&tp)
}

// deliverySpan starts the span of one delivery attempt of del. The first
// attempt is a child of the request that queued the notice; a retry
// comes a backoff later, often after that trace was closed and exported,
// so it starts a trace of its own linked to the request's. A notice
// queued without a trace, or one this process has no tracer for (queued
// by another gateway before any traced request came here), gets none.
func (d *dispatcher) deliverySpan(del session.Delivery) trace.Span {
	none := trace.SpanFromContext(context.Background())
	if del.Notice.Trace == "" {
		return none
	}
	parent := trace.SpanContextFromContext(traceContext.Extract(context.Background(),
		propagation.MapCarrier{"traceparent": del.Notice.Trace}))
	if !parent.IsValid() {
		return none
	}
	tp := otel.GetTracerProvider()
	if p := d.tracer.Load(); p != nil {
		tp = *p
	}
	channel := "webhook"
	if del.Target == mailTarget {
		channel = "mail"
	}
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
		attribute.String("session_auth.notify.channel", channel),
		attribute.String("session_auth.notify.event", del.Notice.Event),
		attribute.String("server.address", receiverName(del.Target)),
		attribute.Int("session_auth.notify.attempt", del.Attempt+1),
	)}
	ctx := context.Background()
	if del.Attempt == 0 {
		ctx = trace.ContextWithRemoteSpanContext(ctx, parent)
	} else {
		opts = append(opts, trace.WithNewRoot(), trace.WithLinks(trace.Link{SpanContext: parent}))
	}
	_, sp := tp.Tracer(tracerName).Start(ctx, "session_auth.notify.deliver", opts...)
	return sp
}

// endDeliverySpan ends sp with the attempt's outcome.
func endDeliverySpan(sp trace.Span, err error) {
	if err != nil {
		sp.RecordError(err)
		sp.SetStatus(codes.Error, err.Error())
	}
	sp.End()
}
