package runner

import (
	"context"
	"errors"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/droverhq/drover/pkg/task"
)

// Run takes deliveries with Concurrency workers until ctx is done, then
// shuts down in stages: it stops taking messages, lets running tasks finish
// for up to Grace, releases whatever is still running for redelivery, and
// flushes acks with a fresh bounded context.
func (r *Runner) Run(ctx context.Context, open task.Opener) error {
	work, stopWork := context.WithCancelCause(context.WithoutCancel(ctx))
	defer stopWork(nil)

	stopHB := r.heartbeats(work, true)
	defer stopHB()

	subs := task.NewReopener(open, r.log, "tasks")
	var workers sync.WaitGroup
	warned := sync.Once{}
	for range r.cfg.Concurrency {
		workers.Go(func() {
			var failed error
			seen := -1
			for ctx.Err() == nil {
				s, v, err := subs.Current(ctx, seen, failed)
				if err != nil {
					return
				}
				seen, failed = v, nil
				d, err := s.Receive(ctx)
				if err != nil {
					failed = err
					continue
				}
				if d.Lease == nil {
					warned.Do(func() {
						r.log.Warn("the tasks subscription's driver cannot extend leases or delay retries; use memq://, awssqs:// or another driver Drover supports")
					})
				}
				r.Process(work, d)
				// Yield between tasks: a worker whose next Receive finds
				// a message ready never parks, and would keep its P while
				// the goroutines it just handed work to (the collector,
				// the HTTP API in the embedded all-in-one) wait behind it
				// (docs/performance.md, round 4).
				runtime.Gosched()
			}
		})
	}

	<-ctx.Done()
	done := make(chan struct{})
	go func() { workers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(r.cfg.Grace):
		r.log.Warn("grace period over; releasing running tasks", "grace", r.cfg.Grace)
		stopWork(errShutdown)
		<-done
	}
	if err := subs.Close(ctx); err != nil && !errors.Is(err, context.Canceled) {
		r.log.Warn("tasks subscription shutdown", "err", err)
	}
	return nil
}

// heartbeats runs Beat every Heartbeat (and at once if now) until ctx is
// done or the returned stop is called, which waits for the loop to end.
// Run and the Lambda batch loop both beat through it.
func (r *Runner) heartbeats(ctx context.Context, now bool) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		if now {
			r.Beat(ctx)
		}
		t := time.NewTicker(r.cfg.Heartbeat)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				r.Beat(ctx)
			}
		}
	})
	return func() { cancel(); wg.Wait() }
}

// Beat runs one heartbeat now: it extends the leases of running tasks,
// cancels those whose status says cancelled, and announces the runner.
func (r *Runner) Beat(ctx context.Context) {
	r.mu.Lock()
	jobs := make([]*job, 0, len(r.active))
	for j := range r.active {
		jobs = append(jobs, j)
	}
	r.mu.Unlock()

	for _, j := range jobs {
		if j.lease == nil {
			continue
		}
		if err := j.lease.SetVisibility(ctx, r.cfg.Lease); err != nil && ctx.Err() == nil {
			r.log.Warn("could not extend lease", "task_id", j.id, "err", err)
		}
	}
	if r.store != nil && len(jobs) > 0 {
		ids := make([]string, len(jobs))
		for i, j := range jobs {
			ids[i] = j.id
		}
		sts, err := r.store.GetMany(ctx, ids)
		if err != nil && ctx.Err() == nil {
			r.log.Warn("could not check running tasks for cancellation", "err", err)
		}
		for i, st := range sts {
			if st != nil && st.State == task.Cancelled {
				jobs[i].cancel(errCancelled)
			}
		}
	}
	host, _ := os.Hostname()
	info := &task.RunnerInfo{
		ID: r.cfg.Name, Name: r.cfg.Name, Host: host, Functions: r.mux.Functions(),
		Concurrency: r.cfg.Concurrency, Active: len(jobs), StartedAt: r.started, SeenAt: time.Now().UTC(),
	}
	if h, ok := r.mux.Handler("exec"); ok {
		if iso, ok := h.(interface{ Isolation() string }); ok {
			info.Exec = iso.Isolation()
		}
	}
	b, err := task.EncodeRunner(info)
	if err == nil {
		err = r.events.Send(ctx, b, 0)
	}
	if err != nil && ctx.Err() == nil {
		r.log.Warn("could not publish runner heartbeat", "err", err)
	}
}
