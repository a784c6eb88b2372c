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

// Run takes deliveries from the one queue open opens with Concurrency
// workers until ctx is done (RunQueues with one queue, "default").
func (r *Runner) Run(ctx context.Context, open task.Opener) error {
	name := task.DefaultQueue
	if len(r.cfg.Queues) == 1 {
		name = r.cfg.Queues[0]
	}
	return r.RunQueues(ctx, []Queue{{Name: name, Weight: 1, Open: open}})
}

// RunQueues takes deliveries from queues with Concurrency workers until
// ctx is done, then shuts down in stages: it stops taking messages, lets
// running tasks finish for up to Grace, releases whatever is still
// running for redelivery, and flushes acks with a fresh bounded context.
//
// With several queues, a free worker takes from them by their weights
// (Config.Strict: in their order of priority; see picker).
func (r *Runner) RunQueues(ctx context.Context, queues []Queue) error {
	if len(queues) == 0 {
		return errors.New("runner: no queue to take tasks from")
	}
	work, stopWork := context.WithCancelCause(context.WithoutCancel(ctx))
	defer stopWork(nil)

	r.mu.Lock()
	r.queues = make([]string, len(queues))
	for i, q := range queues {
		r.queues[i] = q.Name
	}
	r.mu.Unlock()
	stopHB := r.heartbeats(work, true)
	defer stopHB()

	subs := make([]*task.Reopener, len(queues))
	for i, q := range queues {
		what := "tasks"
		if len(queues) > 1 || q.Name != task.DefaultQueue {
			what = "tasks queue " + q.Name
		}
		subs[i] = task.NewReopener(q.Open, r.log, what)
	}
	pick := newPicker(queues, r.cfg.Strict)
	var workers sync.WaitGroup
	warned := sync.Once{}
	for range r.cfg.Concurrency {
		workers.Go(func() {
			recv := newReceiver(subs, pick)
			for ctx.Err() == nil {
				// Only when a worker is free, and only one: a message
				// is taken when it can start (see ReceiveNow).
				d := recv.next(ctx)
				if d == nil {
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
	for i, s := range subs {
		if err := s.Close(ctx); err != nil && !errors.Is(err, context.Canceled) {
			r.log.Warn("tasks subscription shutdown", "queue", queues[i].Name, "err", err)
		}
	}
	return nil
}

// heartbeats runs Beat every Heartbeat (and at once if now) until ctx is
// done or the returned stop is called, which waits for the loop to end.
// Run and the Lambda batch loop both beat through it.
func (r *Runner) heartbeats(ctx context.Context, now bool) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	// Leases first and on every beat, the first included, whatever the
	// rest of the last beat (a status read, a heartbeat event) still
	// waits on: a fresh runner whose first announcement stalls must
	// still extend the lease of the message it has just taken.
	beat := func() {
		r.extendLeases(ctx)
		if r.announcing.CompareAndSwap(false, true) {
			wg.Go(func() {
				defer r.announcing.Store(false)
				r.checkAndAnnounce(ctx)
			})
		}
	}
	wg.Go(func() {
		if now {
			beat()
		}
		t := time.NewTicker(r.cfg.Heartbeat)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				beat()
			}
		}
	})
	return func() { cancel(); wg.Wait() }
}

// Beat runs one heartbeat now: it extends the leases of held deliveries
// (without waiting for the calls), cancels running tasks whose status
// says cancelled, and announces the runner.
func (r *Runner) Beat(ctx context.Context) {
	r.extendLeases(ctx)
	r.checkAndAnnounce(ctx)
}

// extendLeases extends the lease of every delivery Process holds (whether
// or not its function has started), each in a goroutine of its own:
// one slow call to the queue must not hold back the others' extensions
// or the next beat. A lease whose last extension is still under way is
// skipped.
func (r *Runner) extendLeases(ctx context.Context) {
	r.mu.Lock()
	held := make([]*job, 0, len(r.held))
	for j := range r.held {
		held = append(held, j)
	}
	r.mu.Unlock()
	for _, j := range held {
		if j.lease == nil || !j.extending.CompareAndSwap(false, true) {
			continue
		}
		go func() {
			defer j.extending.Store(false)
			ctx, cancel := context.WithTimeout(ctx, r.cfg.Lease)
			defer cancel()
			err := j.lease.SetVisibility(ctx, r.cfg.Lease)
			switch {
			case err == nil || ctx.Err() != nil || j.acking.Load():
			case errors.Is(err, task.ErrLeaseLost):
				// Said once: the lease stays lost.
				if j.leaseLost.CompareAndSwap(false, true) {
					j.log.Warn("lease lost: the message was delivered again elsewhere; this execution goes on, its outcome still counts", "err", err)
				}
			default:
				j.log.Warn("could not extend lease", "err", err)
			}
		}()
	}
}

// checkAndAnnounce cancels running tasks whose status says cancelled,
// and publishes the runner's heartbeat.
func (r *Runner) checkAndAnnounce(ctx context.Context) {
	r.mu.Lock()
	jobs := make([]*job, 0, len(r.active))
	for j := range r.active {
		jobs = append(jobs, j)
	}
	r.mu.Unlock()
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
	r.mu.Lock()
	queues := r.queues
	r.mu.Unlock()
	info := &task.RunnerInfo{
		ID: r.cfg.Name, Name: r.cfg.Name, Host: host, Functions: r.mux.Functions(),
		Concurrency: r.cfg.Concurrency, Active: len(jobs), StartedAt: r.started, SeenAt: time.Now().UTC(),
		Queues: queues, Traits: r.traits,
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
