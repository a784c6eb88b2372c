package main

import (
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/droverhq/drover/client"
	"github.com/droverhq/drover/internal/telemetry/tracecheck"
)

// TestDevTrace (acceptance 3, embedded default): a task submitted under a
// client's span has one trace from the submit request through dispatch,
// each runner attempt (with the function's own span under it) and the
// collector, read from an in-memory exporter.
func TestDevTrace(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	b := setupDevWith(t, func(e *devEnv) {
		e.Dispatch.TracerProvider, e.Runner.TracerProvider, e.Collect.TracerProvider = tp, tp, tp
	}, tracecheck.Register)
	tracecheck.Run(t, client.New(b.url), tp, rec)
}
