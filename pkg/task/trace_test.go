package task

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/trace"
)

func TestTraceContextRoundTrip(t *testing.T) {
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ts, _ := trace.ParseTraceState("congo=t61rcWkgMzE")
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled, TraceState: ts})
	ctx := trace.ContextWithSpanContext(context.Background(), sc)

	var m Message
	m.SetTrace(ctx)
	if m.Traceparent != "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" || m.Tracestate != "congo=t61rcWkgMzE" {
		t.Fatalf("message trace context %q %q", m.Traceparent, m.Tracestate)
	}
	b, err := EncodeMessage(&Message{ID: wireTestID, Function: "f", TimeoutMS: 1, MaxAttempts: 1,
		Traceparent: m.Traceparent, Tracestate: m.Tracestate})
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	back := trace.SpanContextFromContext(got.TraceContext(context.Background()))
	if !back.IsRemote() || back.TraceID() != tid || back.SpanID() != sid || !back.IsSampled() || back.TraceState().String() != "congo=t61rcWkgMzE" {
		t.Fatalf("decoded span context %+v", back)
	}

	// The event of an attempt starts with the message's trace context.
	ev := NewEvent(got, 1, "r", got.CreatedAt)
	if ev.Traceparent != m.Traceparent || ev.Tracestate != m.Tracestate {
		t.Fatalf("event trace context %q %q", ev.Traceparent, ev.Tracestate)
	}
	ev.SetTrace(context.Background())
	if ev.Traceparent != "" || ev.Tracestate != "" {
		t.Fatalf("cleared event trace context %q %q", ev.Traceparent, ev.Tracestate)
	}
}

func TestTraceContextAbsentOrBad(t *testing.T) {
	ctx := context.Background()
	for _, m := range []Message{{}, {Traceparent: "garbage"}, {Traceparent: "00-00000000000000000000000000000000-00f067aa0ba902b7-01"}} {
		if sc := trace.SpanContextFromContext(m.TraceContext(ctx)); sc.IsValid() {
			t.Errorf("traceparent %q gave a valid span context %+v", m.Traceparent, sc)
		}
	}
	if got := (&Message{}).TraceContext(ctx); got != ctx {
		t.Error("no trace context: ctx is not returned as is")
	}
}
