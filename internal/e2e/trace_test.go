package e2e

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/droverhq/drover/client"
	"github.com/droverhq/drover/functions/collect/collector"
	"github.com/droverhq/drover/functions/dispatch/api"
	"github.com/droverhq/drover/internal/awstest"
	"github.com/droverhq/drover/internal/telemetry/tracecheck"
	"github.com/droverhq/drover/pkg/task"
	"github.com/droverhq/drover/runner/serve"
)

// TestAWSTrace (acceptance 3, on the emulator): dispatch, a runner and the
// collector, in this process so that one in-memory exporter sees them all
// but each opened from the stack's variables as its process opens them,
// pass a task's trace context over SQS (task message, then event): one
// trace spans submit → run (each attempt, the function's own span under
// it) → collect.
func TestAWSTrace(t *testing.T) {
	e := newEnv(t, awstest.StackOptions{})
	look := e.stack.Lookup
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel() // until the cleanup below is registered
	var wg sync.WaitGroup

	de := api.Env{TasksTopic: look("DROVER_TASKS_TOPIC"), Bucket: look("DROVER_BUCKET"), Status: look("DROVER_STATUS"),
		TracerProvider: tp}
	srv, dres, err := de.Open(ctx, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dres.Close(log) })
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)

	re := serve.Env{TasksSubscription: look("DROVER_TASKS_SUBSCRIPTION"), EventsTopic: look("DROVER_EVENTS_TOPIC"),
		Bucket: look("DROVER_BUCKET"), Status: look("DROVER_STATUS"), Concurrency: 4, Heartbeat: time.Second,
		Grace: 2 * time.Second, TracerProvider: tp}
	rres, err := re.Open(ctx, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rres.Close(log) })
	r := re.NewRunner(rres, log, "trace-runner", tracecheck.Register)
	wg.Go(func() { _ = r.Run(ctx, task.URLOpener(re.TasksSubscription)) })

	ce := collector.Env{EventsSubscription: look("DROVER_EVENTS_SUBSCRIPTION"), Bucket: look("DROVER_BUCKET"),
		Status: look("DROVER_STATUS"), TracerProvider: tp}
	col, cres, err := ce.Open(ctx, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cres.Close(log) })
	wg.Go(func() { _ = col.Run(ctx, task.URLOpener(ce.EventsSubscription)) })
	// Cleanups run last first: the parts stop before what they use closes.
	t.Cleanup(func() { cancel(); wg.Wait() })

	tracecheck.Run(t, client.New(hs.URL), tp, rec)
}
