package collector

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/droverhq/drover/internal/envconfig"
	"github.com/droverhq/drover/internal/metrics"
	"github.com/droverhq/drover/pkg/task"
)

// Env is the collect process's configuration, read once by its main
// (functions/collect, drover collect) from DROVER_ variables.
type Env struct {
	EventsSubscription string        `env:"DROVER_EVENTS_SUBSCRIPTION"`
	DLQSubscription    string        `env:"DROVER_DLQ_SUBSCRIPTION"`
	Bucket             string        `env:"DROVER_BUCKET"`
	Status             string        `env:"DROVER_STATUS"`
	Retention          time.Duration `env:"DROVER_RETENTION" envDefault:"168h"`
	Log                envconfig.Log
	// MetricsAddr, if set, is where a collect process serves /metrics.
	MetricsAddr string `env:"DROVER_METRICS_ADDR"`
	// TasksTopic is where the collector enqueues workflow steps (a
	// group's callback, a chain's next step) once their predecessors
	// are done; without it workflows stall at their first fan-in.
	TasksTopic string `env:"DROVER_TASKS_TOPIC"`
	// TracerProvider, if set, traces what the part does (nil: off);
	// its main sets it from telemetry.SetupTracing.
	TracerProvider trace.TracerProvider `env:"-"`
	// QueueURLs are the declared task queues (DROVER_QUEUE_URLS, see
	// task.ParseQueueURLs): a workflow step goes to its own queue.
	QueueURLs string `env:"DROVER_QUEUE_URLS"`
	// DLQURLs are the dead-letter queues of the declared queues, as a
	// JSON object of queue names to URLs, each swept like
	// DLQSubscription.
	DLQURLs string `env:"DROVER_DLQ_URLS"`
}

// Validate checks e, returning a one-line error that names the variable
// to change.
func (e *Env) Validate() error {
	for _, v := range []struct{ name, val string }{
		{"DROVER_EVENTS_SUBSCRIPTION", e.EventsSubscription}, {"DROVER_BUCKET", e.Bucket}, {"DROVER_STATUS", e.Status},
	} {
		if v.val == "" {
			return fmt.Errorf("%s is required for drover collect (see README: Configuration)", v.name)
		}
	}
	if e.Retention < 0 {
		return fmt.Errorf("DROVER_RETENTION=%s must not be negative", e.Retention)
	}
	if _, err := task.ParseQueueURLs(e.QueueURLs); err != nil {
		return fmt.Errorf("DROVER_QUEUE_URLS: %w", err)
	}
	if _, err := task.ParseQueueURLs(e.DLQURLs); err != nil {
		return fmt.Errorf("DROVER_DLQ_URLS: %w", err)
	}
	_, err := e.Log.Logger()
	return err
}

// Open opens the archive and the status store and returns a Collector
// over them, with what to close at the end.
func (e *Env) Open(ctx context.Context, log *slog.Logger) (*Collector, *task.Resources, error) {
	res := &task.Resources{}
	var err error
	if res.Archive, err = task.OpenArchive(ctx, e.Bucket); err != nil {
		return nil, nil, fmt.Errorf("DROVER_BUCKET: %w", err)
	}
	if res.Store, err = task.OpenStore(ctx, e.Status); err != nil {
		res.Close(log)
		return nil, nil, fmt.Errorf("DROVER_STATUS: %w", err)
	}
	res.Store.Retention = e.Retention
	col := New(res.Store, res.Archive, log)
	col.Trace(e.TracerProvider)
	urls, err := task.ParseQueueURLs(e.QueueURLs)
	if err != nil {
		res.Close(log)
		return nil, nil, fmt.Errorf("DROVER_QUEUE_URLS: %w", err)
	}
	if d := task.Declared(urls, e.TasksTopic); d != nil {
		if res.Queues, err = task.OpenQueues(ctx, d); err != nil {
			res.Close(log)
			return nil, nil, fmt.Errorf("%s: %w", queuesVariable(e.QueueURLs), err)
		}
		res.Tasks = res.Queues.Default()
		col.Workflow.Tasks, col.Workflow.Queues = res.Tasks, res.Queues
	}
	return col, res, nil
}

// Run runs the collector (and the dead-letter sweeper, if
// DROVER_DLQ_SUBSCRIPTION is set) until ctx is done.
func Run(ctx context.Context, e *Env, log *slog.Logger) error {
	col, res, err := e.Open(ctx, log)
	if err != nil {
		return err
	}
	defer res.Close(log)
	open, err := task.CheckedOpener(ctx, "DROVER_EVENTS_SUBSCRIPTION", e.EventsSubscription)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	if e.MetricsAddr != "" {
		reg := metrics.NewRegistry()
		col.Instrument(reg)
		wg.Go(func() { _ = metrics.Serve(ctx, e.MetricsAddr, reg, log, nil) })
	}
	dlqs, _ := task.ParseQueueURLs(e.DLQURLs)
	if e.DLQSubscription != "" {
		dlqs = task.Declared(dlqs, e.DLQSubscription)
	}
	for _, q := range dlqs.Names() {
		openDLQ, err := task.CheckedOpener(ctx, "DROVER_DLQ_URLS ("+q+")", dlqs[q])
		if err != nil {
			return err
		}
		wg.Go(func() { _ = col.RunSweeper(ctx, openDLQ) })
	}
	log.Info("collector started", "sweepers", len(dlqs))
	err = col.Run(ctx, open)
	wg.Wait()
	return err
}

// queuesVariable names the variable that declares the task queues.
func queuesVariable(queueURLs string) string {
	if queueURLs == "" {
		return "DROVER_TASKS_TOPIC"
	}
	return "DROVER_QUEUE_URLS"
}
