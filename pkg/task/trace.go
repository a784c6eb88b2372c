package task

import (
	"context"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Trace context travels with a task as W3C trace context (traceparent and
// tracestate, https://www.w3.org/TR/trace-context/) in its message and in
// the events of its attempts: dispatch sets it from its submit span, the
// runner continues it in the span its function runs in and hands that to
// the events, and the collector continues it. Empty fields (tracing off)
// cost a comparison.

// traceContext is the W3C propagator; it needs no global registration.
var traceContext propagation.TraceContext

// traceCarrier reads and writes the two trace fields of a message or
// event as a propagation.TextMapCarrier.
type traceCarrier struct{ parent, state *string }

func (c traceCarrier) Get(key string) string {
	switch key {
	case "traceparent":
		return *c.parent
	case "tracestate":
		return *c.state
	}
	return ""
}

func (c traceCarrier) Set(key, value string) {
	switch key {
	case "traceparent":
		*c.parent = value
	case "tracestate":
		*c.state = value
	}
}

func (c traceCarrier) Keys() []string { return []string{"traceparent", "tracestate"} }

// injectTrace writes the span context of ctx into parent and state, or
// clears them if ctx holds no valid span context.
func injectTrace(ctx context.Context, parent, state *string) {
	*parent, *state = "", ""
	if trace.SpanContextFromContext(ctx).IsValid() {
		traceContext.Inject(ctx, traceCarrier{parent, state})
	}
}

// extractTrace returns ctx with the remote span context in parent and
// state, or ctx itself if there is none (or it does not parse).
func extractTrace(ctx context.Context, parent, state string) context.Context {
	if parent == "" {
		return ctx
	}
	return traceContext.Extract(ctx, traceCarrier{&parent, &state})
}

// SetTrace sets m's trace context to the span context of ctx, or clears
// it if ctx has none.
func (m *Message) SetTrace(ctx context.Context) { injectTrace(ctx, &m.Traceparent, &m.Tracestate) }

// TraceContext returns ctx carrying m's trace context as the remote
// parent of the spans started under it; ctx itself if m has none.
func (m *Message) TraceContext(ctx context.Context) context.Context {
	return extractTrace(ctx, m.Traceparent, m.Tracestate)
}

// SetTrace sets e's trace context to the span context of ctx, or clears
// it if ctx has none.
func (e *Event) SetTrace(ctx context.Context) { injectTrace(ctx, &e.Traceparent, &e.Tracestate) }

// TraceContext returns ctx carrying e's trace context as the remote
// parent of the spans started under it; ctx itself if e has none.
func (e *Event) TraceContext(ctx context.Context) context.Context {
	return extractTrace(ctx, e.Traceparent, e.Tracestate)
}
