package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/droverhq/drover/client"
	"github.com/droverhq/drover/internal/envconfig"
	"github.com/droverhq/drover/internal/metrics"
	"github.com/droverhq/drover/pkg/httpq"
	"github.com/droverhq/drover/pkg/task"
	"github.com/droverhq/drover/runner"
)

// Env is a runner process's configuration, read once by Runner (and by
// drover runner) from DROVER_ variables.
type Env struct {
	TasksSubscription string        `env:"DROVER_TASKS_SUBSCRIPTION"`
	EventsTopic       string        `env:"DROVER_EVENTS_TOPIC"`
	Bucket            string        `env:"DROVER_BUCKET"`
	Status            string        `env:"DROVER_STATUS"`
	Concurrency       int           `env:"DROVER_CONCURRENCY" envDefault:"8"`
	Heartbeat         time.Duration `env:"DROVER_HEARTBEAT"`
	Lease             time.Duration `env:"DROVER_LEASE"`
	Visibility        time.Duration `env:"DROVER_VISIBILITY" envDefault:"30s"`
	Grace             time.Duration `env:"DROVER_GRACE" envDefault:"30s"`
	RunnerName        string        `env:"DROVER_RUNNER_NAME"`
	// Server, if set (drover runner --server), makes this a remote
	// runner: it takes tasks, publishes events and reaches the archive
	// and statuses through the dispatch API at this http(s) URL (package
	// httpq), with APIKey; the four URLs above are not used.
	Server string `env:"DROVER_SERVER"`
	APIKey string `env:"DROVER_API_KEY"`
	// Queues are the queues the runner serves with their weights
	// ("critical:6,default:3,low:1"; task.ParseQueueWeights), Priority
	// how it picks among them: weighted (in proportion, none starves) or
	// strict (in the order listed).
	Queues   string `env:"DROVER_QUEUES"`
	Priority string `env:"DROVER_PRIORITY" envDefault:"weighted"`
	// QueueURLs are the subscription URLs of the declared queues (a JSON
	// object of names to URLs, task.ParseQueueURLs); "default" may come
	// from TasksSubscription instead.
	QueueURLs string `env:"DROVER_QUEUE_URLS"`
	// Traits are what the runner declares it offers ("python=3.11,gpu"),
	// beside os, arch, cpus and memory, which it detects.
	Traits string `env:"DROVER_TRAITS"`
	// Subscriptions, if set, replace QueueURLs and TasksSubscription (drover
	// dev fills them with its embedded queues).
	Subscriptions task.QueueURLs `env:"-"`
	// StartedDelay is how long a task runs before its runner publishes
	// its "started" event (runner.Config.StartedDelay: 0 is the 20ms
	// default, negative publishes at once). The Lambda runner publishes
	// at once unless this is set.
	StartedDelay time.Duration `env:"DROVER_STARTED_DELAY"`
	Log          envconfig.Log
	// MetricsAddr, if set, is where a runner process serves /metrics.
	MetricsAddr string `env:"DROVER_METRICS_ADDR"`
	// Registerer, if set, receives the runners' Prometheus metrics
	// (drover dev shares one registry between its parts).
	Registerer prometheus.Registerer `env:"-"`
	// TracerProvider, if set, traces what the part does (nil: off);
	// its main sets it from telemetry.SetupTracing.
	TracerProvider trace.TracerProvider `env:"-"`
}

// Validate checks e, returning a one-line error that names the variable
// to change.
func (e *Env) Validate() error {
	if e.Server != "" {
		if _, err := httpq.New(e.Server, httpq.Options{}); err != nil {
			return fmt.Errorf("--server / DROVER_SERVER: %w", err)
		}
		// A remote runner's queues are the dispatcher's: only the
		// routing settings themselves are checked here.
		if _, err := e.queueWeights(); err != nil {
			return err
		}
	} else if _, err := e.QueueSubscriptions(); err != nil {
		return err
	}
	for _, v := range []struct{ name, val string }{
		{"DROVER_EVENTS_TOPIC", e.EventsTopic},
		{"DROVER_BUCKET", e.Bucket}, {"DROVER_STATUS", e.Status},
	} {
		if v.val == "" && e.Server == "" {
			return fmt.Errorf("%s is required for drover runner (see README: Configuration), or --server URL for a remote runner", v.name)
		}
	}
	if err := e.ValidateTuning(); err != nil {
		return err
	}
	_, err := e.Log.Logger()
	return err
}

// queueWeights returns the queues the runner serves with their weights,
// checking DROVER_QUEUES, DROVER_PRIORITY and DROVER_TRAITS.
func (e *Env) queueWeights() ([]task.QueueWeight, error) {
	weights, err := task.ParseQueueWeights(e.Queues)
	if err != nil {
		return nil, fmt.Errorf("DROVER_QUEUES: %w", err)
	}
	if e.Priority != task.Weighted && e.Priority != task.Strict {
		return nil, fmt.Errorf("DROVER_PRIORITY=%q: want %s or %s", e.Priority, task.Weighted, task.Strict)
	}
	if _, err := task.ParseTraits(e.Traits); err != nil {
		return nil, fmt.Errorf("DROVER_TRAITS: %w", err)
	}
	return weights, nil
}

// QueueSubscriptions returns the queues the runner serves, each with its
// weight and subscription URL, checking DROVER_QUEUES, DROVER_PRIORITY,
// DROVER_TRAITS and that each queue served is declared.
func (e *Env) QueueSubscriptions() ([]QueueURL, error) {
	weights, err := e.queueWeights()
	if err != nil {
		return nil, err
	}
	urls, err := e.DeclaredSubscriptions()
	if err != nil {
		return nil, err
	}
	out := make([]QueueURL, 0, len(weights))
	for _, w := range weights {
		u, ok := urls[w.Name]
		if !ok {
			if w.Name == task.DefaultQueue {
				return nil, fmt.Errorf("DROVER_TASKS_SUBSCRIPTION (or DROVER_QUEUE_URLS) is required for drover runner (see README: Configuration)")
			}
			return nil, fmt.Errorf("DROVER_QUEUES: queue %s is not declared in DROVER_QUEUE_URLS (declared: %s)", w.Name, strings.Join(urls.Names(), ", "))
		}
		out = append(out, QueueURL{QueueWeight: w, URL: u})
	}
	return out, nil
}

// DeclaredSubscriptions returns the subscription URLs of every declared
// queue: Subscriptions if set, else DROVER_QUEUE_URLS with default from
// DROVER_TASKS_SUBSCRIPTION (drover dev serves them all to remote
// runners).
func (e *Env) DeclaredSubscriptions() (task.QueueURLs, error) {
	if e.Subscriptions != nil {
		return e.Subscriptions, nil
	}
	parsed, err := task.ParseQueueURLs(e.QueueURLs)
	if err != nil {
		return nil, fmt.Errorf("DROVER_QUEUE_URLS: %w", err)
	}
	return task.Declared(parsed, e.TasksSubscription), nil
}

// QueueURL is a queue a runner serves, with its weight and subscription.
type QueueURL struct {
	task.QueueWeight
	URL string
}

// ValidateTuning checks the concurrency, heartbeat, lease and visibility
// settings (drover dev checks them with its own URLs).
func (e *Env) ValidateTuning() error {
	if e.Concurrency < 1 || e.Concurrency > 10000 {
		return fmt.Errorf("DROVER_CONCURRENCY=%d: need 1 to 10000", e.Concurrency)
	}
	if e.Heartbeat < 0 || e.Lease < 0 || e.Visibility <= 0 {
		return fmt.Errorf("DROVER_HEARTBEAT, DROVER_LEASE and DROVER_VISIBILITY must be positive durations")
	}
	hb := e.Heartbeat
	if hb == 0 {
		hb = 5 * time.Second
	}
	if e.Lease != 0 && e.Lease < 2*hb {
		return fmt.Errorf("DROVER_LEASE=%s must be at least twice DROVER_HEARTBEAT=%s, or a slow heartbeat lets a running task's message come back", e.Lease, hb)
	}
	if e.Visibility < 2*hb {
		return fmt.Errorf("DROVER_VISIBILITY=%s must be at least twice DROVER_HEARTBEAT=%s: the first heartbeat must extend a message before its visibility timeout ends", e.Visibility, hb)
	}
	return nil
}

// Open opens the events topic, the archive and the status store.
func (e *Env) Open(ctx context.Context, log *slog.Logger) (*task.Resources, error) {
	res := &task.Resources{}
	var err error
	fail := func(name string, err error) (*task.Resources, error) {
		res.Close(log)
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if res.Events, err = task.OpenTopic(ctx, e.EventsTopic); err != nil {
		return fail("DROVER_EVENTS_TOPIC", err)
	}
	if res.Archive, err = task.OpenArchive(ctx, e.Bucket); err != nil {
		return fail("DROVER_BUCKET", err)
	}
	if res.Store, err = task.OpenStore(ctx, e.Status); err != nil {
		return fail("DROVER_STATUS", err)
	}
	return res, nil
}

// NewRunner returns a runner named name over res (its Events, Archive and
// Store) with the built-in functions and those register adds (may be
// nil).
func (e *Env) NewRunner(res *task.Resources, log *slog.Logger, name string, register func(*runner.Mux)) *runner.Runner {
	return e.newRunner(res, res.Store, log, name, register)
}

func (e *Env) newRunner(res *task.Resources, store runner.Statuses, log *slog.Logger, name string, register func(*runner.Mux)) *runner.Runner {
	mux := runner.NewMux()
	runner.RegisterBuiltins(mux, res.Archive.Bucket())
	if register != nil {
		register(mux)
	}
	traits, _ := task.ParseTraits(e.Traits) // checked by Validate
	var queues []string
	if ws, err := e.queueWeights(); err == nil {
		for _, w := range ws {
			queues = append(queues, w.Name)
		}
	}
	return runner.New(mux, res.Events, res.Archive, store, log, runner.Config{
		Name: name, Concurrency: e.Concurrency, Heartbeat: e.Heartbeat, Lease: e.Lease, Grace: e.Grace,
		StartedDelay: e.StartedDelay, Registerer: e.Registerer, TracerProvider: e.TracerProvider,
		Queues: queues, Strict: e.Priority == task.Strict, Traits: traits,
	})
}

// OpenQueues opens the subscription of every queue the runner serves once
// now, so that a bad URL stops the process at start.
func (e *Env) OpenQueues(ctx context.Context) ([]runner.Queue, error) {
	qs, err := e.QueueSubscriptions()
	if err != nil {
		return nil, err
	}
	out := make([]runner.Queue, 0, len(qs))
	for _, q := range qs {
		variable := "DROVER_TASKS_SUBSCRIPTION"
		if e.Subscriptions != nil || e.QueueURLs != "" {
			variable = "DROVER_QUEUE_URLS (" + q.Name + ")"
		}
		open, err := task.CheckedOpener(ctx, variable, q.URL)
		if err != nil {
			return nil, err
		}
		out = append(out, runner.Queue{Name: q.Name, Weight: q.Weight, Open: open})
	}
	return out, nil
}

// Run runs one runner process until ctx is done: a remote runner if
// e.Server is set.
func Run(ctx context.Context, e *Env, log *slog.Logger, register func(*runner.Mux)) error {
	var (
		res    *task.Resources
		queues []runner.Queue
		store  runner.Statuses
		err    error
	)
	if e.Server != "" {
		res, queues, store, err = e.openRemote(ctx, log)
	} else if res, err = e.Open(ctx, log); err == nil {
		store = res.Store
		if queues, err = e.OpenQueues(ctx); err != nil {
			res.Close(log)
		}
	}
	if err != nil {
		return err
	}
	defer res.Close(log)
	if e.MetricsAddr != "" {
		reg := metrics.NewRegistry()
		e.Registerer = reg
		go func() { _ = metrics.Serve(ctx, e.MetricsAddr, reg, log, nil) }()
	}
	r := e.newRunner(res, store, log, e.RunnerName, register)
	log.Info("runner started", "runner", r.Name(), "concurrency", e.Concurrency, "queues", e.Queues, "traits", r.Traits().String(), "server", e.Server)
	return r.RunQueues(ctx, queues)
}

// openRemote returns a remote runner's transport: the dispatch API at
// e.Server, with a lease subscription for each queue of DROVER_QUEUES,
// checked once now so that a wrong URL or key, or a queue the dispatcher
// does not lease, stops the process at start.
func (e *Env) openRemote(ctx context.Context, log *slog.Logger) (*task.Resources, []runner.Queue, runner.Statuses, error) {
	hb := e.Heartbeat
	if hb <= 0 {
		hb = 5 * time.Second
	}
	lease := e.Lease
	if lease <= 0 {
		lease = 6 * hb
	}
	weights, err := e.queueWeights()
	if err != nil {
		return nil, nil, nil, err
	}
	rem, err := httpq.New(e.Server, httpq.Options{APIKey: e.APIKey, Lease: lease, Log: log})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("--server / DROVER_SERVER: %w", err)
	}
	names := make([]string, len(weights))
	queues := make([]runner.Queue, len(weights))
	for i, w := range weights {
		names[i] = w.Name
		queues[i] = runner.Queue{Name: w.Name, Weight: w.Weight, Open: rem.Opener(w.Name)}
	}
	check, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := rem.Check(check, names...); err != nil {
		hint := ""
		if ce := (*client.Error)(nil); errors.As(err, &ce) && ce.Status == http.StatusUnauthorized {
			hint = " (set DROVER_API_KEY to one of the dispatcher's DROVER_API_KEYS)"
		} else if errors.Is(err, httpq.ErrQueueNotLeased) {
			hint = " (DROVER_QUEUES names it; see docs/routing.md: Remote runners)"
		}
		return nil, nil, nil, fmt.Errorf("remote runner: %w%s", err, hint)
	}
	return rem.Resources(), queues, rem.Statuses(), nil
}
