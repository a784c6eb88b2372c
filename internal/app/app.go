package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/droverhq/drover/internal/api"
	"github.com/droverhq/drover/internal/collector"
	"github.com/droverhq/drover/pkg/task"
	"github.com/droverhq/drover/runner"
)

// Deps are the opened resources a part works with. Open fills only what
// its part needs.
type Deps struct {
	Tasks   *task.Topic
	Events  *task.Topic
	Archive *task.Archive
	Store   *task.Store
}

// Open opens the resources part needs, naming the variable in any error.
func (c *Config) Open(ctx context.Context, part Part) (*Deps, error) {
	d := &Deps{}
	var err error
	fail := func(name string, err error) (*Deps, error) {
		d.Close(context.Background())
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if part == PartDev || part == PartDispatch {
		if d.Tasks, err = task.OpenTopic(ctx, c.TasksTopic); err != nil {
			return fail("DROVER_TASKS_TOPIC", err)
		}
	}
	if part == PartDev || part == PartRunner {
		if d.Events, err = task.OpenTopic(ctx, c.EventsTopic); err != nil {
			return fail("DROVER_EVENTS_TOPIC", err)
		}
	}
	if d.Archive, err = task.OpenArchive(ctx, c.Bucket); err != nil {
		return fail("DROVER_BUCKET", err)
	}
	if d.Store, err = task.OpenStore(ctx, c.Status); err != nil {
		return fail("DROVER_STATUS", err)
	}
	d.Store.Retention = c.Retention
	return d, nil
}

// Close flushes and closes whatever is open.
func (d *Deps) Close(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	for _, t := range []*task.Topic{d.Tasks, d.Events} {
		if t != nil {
			_ = t.Shutdown(ctx)
		}
	}
	if d.Archive != nil {
		_ = d.Archive.Close()
	}
	if d.Store != nil {
		if err := d.Store.Close(); err != nil {
			slog.Error("could not save the status store", "err", err)
		}
	}
}

// API returns the dispatch handler over d.
func (c *Config) API(d *Deps, log *slog.Logger) *api.Server {
	return api.New(d.Tasks, d.Archive, d.Store, log, api.Config{APIKeys: c.APIKeys})
}

// Runner returns a runner over d with the built-in functions and those
// registered by register (may be nil).
func (c *Config) Runner(d *Deps, log *slog.Logger, name string, register func(*runner.Mux)) *runner.Runner {
	mux := runner.NewMux()
	runner.RegisterBuiltins(mux, d.Archive.Bucket())
	if register != nil {
		register(mux)
	}
	return runner.New(mux, d.Events, d.Archive, d.Store, log, runner.Config{
		Name: name, Concurrency: c.Concurrency, Heartbeat: c.Heartbeat, Lease: c.Lease, Grace: c.Grace,
		StartedDelay: c.StartedDelay,
	})
}

func (c *Config) opener(url string) func(ctx context.Context) (*task.Subscription, error) {
	return func(ctx context.Context) (*task.Subscription, error) { return task.OpenSubscription(ctx, url) }
}

// checkedOpener opens the subscription at url once now, so that a bad URL
// stops the process at start, and hands that subscription to the first
// call of the opener it returns.
func (c *Config) checkedOpener(ctx context.Context, name, url string) (func(ctx context.Context) (*task.Subscription, error), error) {
	first, err := task.OpenSubscription(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	var once sync.Once
	return func(ctx context.Context) (*task.Subscription, error) {
		var s *task.Subscription
		once.Do(func() { s, first = first, nil })
		if s != nil {
			return s, nil
		}
		return task.OpenSubscription(ctx, url)
	}, nil
}

// Serve serves h on addr until ctx is done, then drains for up to 10s.
// ready, if not nil, receives the bound address.
func Serve(ctx context.Context, addr string, h http.Handler, log *slog.Logger, ready func(net.Addr)) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("DROVER_ADDR=%s: %w", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	if ready != nil {
		ready(l.Addr())
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve HTTP: %w", err)
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shut); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		log.Warn("HTTP shutdown", "err", err)
	}
	return nil
}

// RunDispatch serves the API until ctx is done.
func (c *Config) RunDispatch(ctx context.Context, log *slog.Logger, ready func(net.Addr)) error {
	d, err := c.Open(ctx, PartDispatch)
	if err != nil {
		return err
	}
	defer d.Close(ctx)
	return Serve(ctx, c.Addr, c.API(d, log), log, ready)
}

// RunRunner runs one runner process until ctx is done.
func (c *Config) RunRunner(ctx context.Context, log *slog.Logger, register func(*runner.Mux)) error {
	d, err := c.Open(ctx, PartRunner)
	if err != nil {
		return err
	}
	defer d.Close(ctx)
	open, err := c.checkedOpener(ctx, "DROVER_TASKS_SUBSCRIPTION", c.TasksSubscription)
	if err != nil {
		return err
	}
	r := c.Runner(d, log, c.RunnerName, register)
	log.Info("runner started", "runner", r.Name(), "concurrency", c.Concurrency)
	return r.Run(ctx, open)
}

// RunCollect runs the collector (and the dead-letter sweeper, if
// DROVER_DLQ_SUBSCRIPTION is set) until ctx is done.
func (c *Config) RunCollect(ctx context.Context, log *slog.Logger) error {
	d, err := c.Open(ctx, PartCollect)
	if err != nil {
		return err
	}
	defer d.Close(ctx)
	open, err := c.checkedOpener(ctx, "DROVER_EVENTS_SUBSCRIPTION", c.EventsSubscription)
	if err != nil {
		return err
	}
	col := collector.New(d.Store, d.Archive, log)
	var wg sync.WaitGroup
	if c.DLQSubscription != "" {
		openDLQ, err := c.checkedOpener(ctx, "DROVER_DLQ_SUBSCRIPTION", c.DLQSubscription)
		if err != nil {
			return err
		}
		wg.Go(func() { _ = col.RunSweeper(ctx, openDLQ) })
	}
	log.Info("collector started", "sweeper", c.DLQSubscription != "")
	err = col.Run(ctx, open)
	wg.Wait()
	return err
}

// RunDev runs the embedded default: dispatch, Runners runners and the
// collector in one process. register adds the caller's functions.
func (c *Config) RunDev(ctx context.Context, log *slog.Logger, register func(*runner.Mux), ready func(net.Addr)) error {
	d, err := c.Open(ctx, PartDev)
	if err != nil {
		return err
	}
	defer d.Close(ctx)

	var wg sync.WaitGroup
	col := collector.New(d.Store, d.Archive, log)
	colCtx, stopCol := context.WithCancel(context.WithoutCancel(ctx))
	wg.Go(func() { _ = col.Run(colCtx, c.opener(c.EventsSubscription)) })
	var runners sync.WaitGroup
	for i := range c.Runners {
		name := fmt.Sprintf("dev-%d", i+1)
		if c.RunnerName != "" {
			name = fmt.Sprintf("%s-%d", c.RunnerName, i+1)
		}
		r := c.Runner(d, log, name, register)
		runners.Go(func() { _ = r.Run(ctx, c.opener(c.TasksSubscription)) })
	}
	err = Serve(ctx, c.Addr, c.API(d, log), log, ready)
	runners.Wait()
	// Let the collector apply the runners' last events before stopping.
	time.Sleep(200 * time.Millisecond)
	stopCol()
	wg.Wait()
	return err
}
