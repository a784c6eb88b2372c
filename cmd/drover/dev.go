package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"path"
	"path/filepath"
	"sync"
	"time"

	"github.com/droverhq/drover/functions/collect/collector"
	"github.com/droverhq/drover/functions/dispatch/api"
	"github.com/droverhq/drover/internal/embedded"
	"github.com/droverhq/drover/internal/metrics"
	"github.com/droverhq/drover/pkg/memq"
	"github.com/droverhq/drover/pkg/task"
	"github.com/droverhq/drover/runner"
	"github.com/droverhq/drover/runner/serve"
)

// devEnv is the configuration of drover dev: each part's own, from the
// same DROVER_ variables, and how many runners to start. The URLs each
// part leaves unset default to the embedded ones under DataDir.
type devEnv struct {
	Dispatch api.Env
	Runner   serve.Env
	Collect  collector.Env
	Runners  int    `env:"DROVER_RUNNERS" envDefault:"2"`
	DataDir  string `env:"DROVER_DATA_DIR" envDefault:".drover"`
	// Durability is embedded.Durable or embedded.Memory.
	Durability string `env:"DROVER_DURABILITY" envDefault:"durable"`
	// queueTopics are the declared queues' topics: the queues
	// DROVER_QUEUES names (and "default"), each its own memq queue, unless
	// DROVER_QUEUE_URLS declares them.
	queueTopics task.QueueURLs
}

// embed fills the embedded default's URLs into the unset variables, and a
// 1s heartbeat if none is set.
func (e *devEnv) embed() error {
	u, err := embedded.Defaults(e.DataDir, e.Runner.Visibility, e.Durability)
	if err != nil {
		return err
	}
	def := func(v *string, s string) {
		if *v == "" {
			*v = s
		}
	}
	def(&e.Dispatch.TasksTopic, u.TasksTopic)
	def(&e.Runner.TasksSubscription, u.TasksSubscription)
	weights, err := task.ParseQueueWeights(e.Runner.Queues)
	if err != nil {
		return fmt.Errorf("DROVER_QUEUES: %w", err)
	}
	declared, err := task.ParseQueueURLs(e.Dispatch.QueueURLs)
	if err != nil {
		return fmt.Errorf("DROVER_QUEUE_URLS: %w", err)
	}
	if declared == nil {
		// Each queue a runner serves is its own embedded queue.
		e.queueTopics = task.QueueURLs{task.DefaultQueue: e.Dispatch.TasksTopic}
		e.Runner.Subscriptions = task.QueueURLs{task.DefaultQueue: e.Runner.TasksSubscription}
		for _, w := range weights {
			e.queueTopics[w.Name] = embedded.QueueURL(e.Dispatch.TasksTopic, w.Name)
			e.Runner.Subscriptions[w.Name] = embedded.QueueURL(e.Runner.TasksSubscription, w.Name)
		}
	} else {
		e.queueTopics = task.Declared(declared, e.Dispatch.TasksTopic)
	}
	def(&e.Runner.EventsTopic, u.EventsTopic)
	def(&e.Collect.EventsSubscription, u.EventsSubscription)
	for _, b := range []*string{&e.Dispatch.Bucket, &e.Runner.Bucket, &e.Collect.Bucket} {
		def(b, u.Bucket)
	}
	for _, s := range []*string{&e.Dispatch.Status, &e.Runner.Status, &e.Collect.Status} {
		def(s, u.Status)
	}
	if e.Runner.Heartbeat == 0 {
		e.Runner.Heartbeat = time.Second
	}
	return nil
}

// validate checks every part's settings.
func (e *devEnv) validate() error {
	if e.Runners < 0 {
		return fmt.Errorf("DROVER_RUNNERS=%d: need 0 (remote runners only) or more", e.Runners)
	}
	for _, v := range []func() error{e.Dispatch.Validate, e.Runner.Validate, e.Collect.Validate} {
		if err := v(); err != nil {
			return err
		}
	}
	return nil
}

// runDev runs the embedded default: dispatch, Runners runners and the
// collector in one process, sharing one set of resources. register adds
// the caller's functions to the runners.
func runDev(ctx context.Context, e *devEnv, log *slog.Logger, register func(*runner.Mux), ready func(net.Addr)) error {
	// The API's keys first (from DROVER_API_KEYS_SECRET if set).
	apiCfg, err := e.Dispatch.Config(ctx)
	if err != nil {
		return err
	}
	// Remote runners lease the tasks of every declared queue.
	subs, err := e.Runner.DeclaredSubscriptions()
	if err != nil {
		return err
	}
	leased := map[string]task.Opener{}
	for name, u := range subs {
		leased[name] = task.URLOpener(u)
	}
	res := &task.Resources{}
	defer res.Close(log)
	if res.Queues, err = task.OpenQueues(ctx, e.queueTopics); err != nil {
		return fmt.Errorf("DROVER_QUEUES: %w", err)
	}
	res.Tasks = res.Queues.Default()
	if res.Events, err = task.OpenTopic(ctx, e.Runner.EventsTopic); err != nil {
		return fmt.Errorf("DROVER_EVENTS_TOPIC: %w", err)
	}
	if res.Archive, err = task.OpenArchive(ctx, e.Dispatch.Bucket); err != nil {
		return fmt.Errorf("DROVER_BUCKET: %w", err)
	}
	if res.Store, err = task.OpenStore(ctx, e.Dispatch.Status); err != nil {
		return fmt.Errorf("DROVER_STATUS: %w", err)
	}
	res.Store.Retention = e.Dispatch.Retention
	if e.Durability == embedded.Durable {
		for _, q := range []string{"tasks", "events"} {
			r, f, d := memq.Recovered(q)
			log.Info("durable queue recovered", "queue", q, "ready", r, "in_flight", f, "delayed", d)
		}
	}

	// One registry for the three parts, served by dispatch at /metrics.
	reg := metrics.NewRegistry()
	e.Runner.Registerer = reg
	var wg sync.WaitGroup
	col := collector.New(res.Store, res.Archive, log)
	col.Instrument(reg)
	col.Trace(e.Collect.TracerProvider)
	col.Workflow.Tasks, col.Workflow.Queues = res.Tasks, res.Queues
	colCtx, stopCol := context.WithCancel(context.WithoutCancel(ctx))
	wg.Go(func() { _ = col.Run(colCtx, task.URLOpener(e.Collect.EventsSubscription)) })
	var runners sync.WaitGroup
	for i := range e.Runners {
		name := fmt.Sprintf("dev-%d", i+1)
		if e.Runner.RunnerName != "" {
			name = fmt.Sprintf("%s-%d", e.Runner.RunnerName, i+1)
		}
		r := e.Runner.NewRunner(res, log, name, register)
		queues, err := e.Runner.OpenQueues(ctx)
		if err != nil {
			stopCol()
			wg.Wait()
			return err
		}
		runners.Go(func() { _ = r.RunQueues(ctx, queues) })
	}
	apiCfg.Metrics, apiCfg.TracerProvider, apiCfg.Queues = reg, e.Dispatch.TracerProvider, res.Queues
	srv := api.New(res.Tasks, res.Archive, res.Store, log, apiCfg)
	srv.ServeLeases(leased, res.Events, api.LeaseConfig{})
	err = api.Serve(ctx, e.Dispatch.Addr, srv, log, ready)
	srv.Close()
	runners.Wait()
	// Let the collector apply the runners' last events before stopping.
	time.Sleep(200 * time.Millisecond)
	stopCol()
	wg.Wait()
	// Every part has stopped: the durable queues sync and give back their
	// engine, which closes with the status store (res.Close) after them:
	// every declared queue's as well as the events'.
	urls := []string{e.Dispatch.TasksTopic, e.Runner.TasksSubscription, e.Runner.EventsTopic, e.Collect.EventsSubscription}
	for _, m := range []task.QueueURLs{e.queueTopics, subs} {
		for _, name := range m.Names() {
			urls = append(urls, m[name])
		}
	}
	for _, u := range urls {
		if name, ok := durableQueue(u); ok {
			if rerr := memq.Release(name); rerr != nil {
				log.Error("durable queue not closed cleanly", "queue", name, "err", rerr)
			}
		}
	}
	return err
}

// durableQueue returns the memq queue name of a durable memq URL (one with
// a dir).
func durableQueue(raw string) (string, bool) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "memq" || u.Query().Get("dir") == "" {
		return "", false
	}
	return path.Join(u.Host, u.Path), true
}

// durabilityLine says at start which mode runs and what it recovered.
func (e *devEnv) durabilityLine() string {
	if e.Durability == embedded.Memory {
		return "DROVER_DURABILITY=memory: queued tasks do not survive this process"
	}
	r, f, d := memq.Recovered("tasks")
	return fmt.Sprintf("durable: every accepted task is on disk in %s (recovered %d ready, %d in flight, %d delayed tasks)",
		filepath.Join(e.DataDir, embedded.StateDir), r, f, d)
}
