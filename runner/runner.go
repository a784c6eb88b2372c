package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/droverhq/drover/internal/metrics"
	"github.com/droverhq/drover/pkg/task"
)

// Config tunes a Runner. Zero values take the defaults in parentheses.
type Config struct {
	// Name identifies the runner in statuses and heartbeats (host-pid).
	Name string
	// Concurrency is how many tasks run at once (4).
	Concurrency int
	// Heartbeat is how often running tasks' leases are extended and their
	// cancellation checked, and how often the runner announces itself (5s).
	Heartbeat time.Duration
	// Lease is how long each heartbeat hides a running task's message from
	// other runners (6 × Heartbeat). A runner that dies stops extending it,
	// and the message comes back after at most this long.
	Lease time.Duration
	// BackoffBase and BackoffMax shape the delay before a retry: the base
	// doubles with each attempt up to the cap, with jitter (1s, 5m).
	BackoffBase, BackoffMax time.Duration
	// Grace is how long Run lets running tasks finish at shutdown (30s).
	Grace time.Duration
	// ResultLimit is the largest result kept inline in the status; larger
	// results go to the archive (task.DefaultResultLimit).
	ResultLimit int
	// PayloadLimit caps claim-checked arguments read from the archive
	// (64 MiB).
	PayloadLimit int64
	// StartedDelay is how long a task runs before its "started" event is
	// published (20ms); a negative value publishes it at once. A task
	// that ends sooner publishes only its outcome, which carries
	// started_at: its status goes from queued straight to its outcome,
	// and the events queue and status store do half the work. Tasks
	// that run longer show as running, as before: each publishes one
	// started event, about StartedDelay after it started and always
	// before its outcome.
	StartedDelay time.Duration
	// Queues names the queues the runner serves, for its heartbeat
	// (RunQueues sets them from its queues).
	Queues []string
	// Strict makes a runner serving several queues take from a queue
	// only when every queue before it is empty; otherwise it takes from
	// them in proportion to their weights (see RunQueues).
	Strict bool
	// Traits are what the runner declares it offers (DROVER_TRAITS),
	// beside the ones it detects (DetectTraits), which they override.
	// A task whose requirements they do not meet is handed back.
	Traits task.Traits
	// HandBackMax caps how long a task this runner cannot run (its
	// function or traits are missing) stays hidden once handed back:
	// 500ms doubling with each delivery of the message, up to this (30s).
	HandBackMax time.Duration
	// Registerer, if set, is where the runner's Prometheus metrics go
	// (attempts started, succeeded, failed, retried; run time). Runners
	// of one process may share one.
	Registerer prometheus.Registerer
	// TracerProvider, if set, traces attempts: each function runs inside
	// a "run <function>" span, a child of the trace context its task
	// message carries, and its context carries that span, so that the
	// spans a function starts nest under it; the attempt's events carry
	// it on to the collector. Nil: no spans (a message's trace context
	// is still passed on to the function and the events).
	TracerProvider trace.TracerProvider
}

func (c *Config) defaults() {
	if c.Name == "" {
		host, _ := os.Hostname()
		c.Name = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 4
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = 5 * time.Second
	}
	if c.Lease <= 0 {
		c.Lease = 6 * c.Heartbeat
	}
	if c.BackoffBase <= 0 {
		c.BackoffBase = time.Second
	}
	if c.BackoffMax <= 0 {
		c.BackoffMax = 5 * time.Minute
	}
	if c.Grace <= 0 {
		c.Grace = 30 * time.Second
	}
	if c.ResultLimit <= 0 {
		c.ResultLimit = task.DefaultResultLimit
	}
	if c.PayloadLimit <= 0 {
		c.PayloadLimit = 64 << 20
	}
	if c.StartedDelay == 0 {
		c.StartedDelay = DefaultStartedDelay
	}
	if c.HandBackMax <= 0 {
		c.HandBackMax = 30 * time.Second
	}
}

// DefaultStartedDelay is Config.StartedDelay's default.
const DefaultStartedDelay = 20 * time.Millisecond

// Runner takes task messages, runs the registered functions and publishes
// what happened. It acks a message only after the event recording its
// outcome is published (and its result archived), so a runner that dies at
// any point loses nothing: the message comes back after its lease.
type Runner struct {
	mux     *Mux
	events  *task.Topic
	archive *task.Archive
	store   Statuses
	checks  *stateChecks
	log     *slog.Logger
	cfg     Config
	started time.Time
	metrics *metrics.Runner
	// tracer is nil when tracing is off.
	tracer trace.Tracer
	// traits are the detected and declared traits.
	traits task.Traits

	mu sync.Mutex
	// queues are the queues served (guarded by mu).
	queues []string
	// held are the deliveries Process holds (their leases are extended),
	// active those of them whose function runs.
	held   map[*job]struct{}
	active map[*job]struct{}
	// startedTimer, armed while startedArmed, fires when the earliest
	// running job that has not published its started event is due to
	// (see startedDue). One runner-wide timer instead of one per task:
	// almost every task ends before StartedDelay.
	startedTimer *time.Timer
	startedArmed bool
	// announcing is set while a heartbeat's cancellation check and
	// announcement run (see heartbeats).
	announcing atomic.Bool
}

// Statuses is what a runner reads and writes of task statuses: the start
// of each execution (see task.Store.StartMany, which numbers attempts)
// and, at each heartbeat, the states of the tasks it runs (a cancelled
// one is stopped). *task.Store is one; a remote runner's is its dispatch
// API (package httpq), and GetMany need only fill ID and State.
type Statuses interface {
	StartMany(ctx context.Context, evs []*task.Event) ([]task.Started, error)
	GetMany(ctx context.Context, ids []string) ([]*task.Status, error)
}

// New returns a Runner for the functions in mux. store may be nil, in which
// case cancellation is not checked and attempts are counted by deliveries.
func New(mux *Mux, events *task.Topic, archive *task.Archive, store Statuses, log *slog.Logger, cfg Config) *Runner {
	cfg.defaults()
	if s, ok := store.(*task.Store); ok && s == nil {
		store = nil // a nil *task.Store is no store
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Runner{
		mux: mux, events: events, archive: archive, store: store,
		log: log.With("runner", cfg.Name), cfg: cfg, started: time.Now().UTC(),
		held: map[*job]struct{}{}, active: map[*job]struct{}{}, metrics: metrics.NewRunner(cfg.Registerer),
	}
	if cfg.TracerProvider != nil {
		r.tracer = cfg.TracerProvider.Tracer("github.com/droverhq/drover/runner")
	}
	if store != nil {
		r.checks = newStateChecks(store)
	}
	r.traits = DetectTraits()
	for k, v := range cfg.Traits {
		r.traits[k] = v
	}
	r.queues = cfg.Queues
	return r
}

// Name returns the runner's name.
func (r *Runner) Name() string { return r.cfg.Name }

// Traits returns the runner's traits, detected and declared.
func (r *Runner) Traits() task.Traits { return r.traits }

// job is one delivery being processed: everything Process keeps of it,
// in one allocation.
type job struct {
	id     string
	lease  task.LeaseControl
	cancel context.CancelCauseFunc // set before the job is active

	// ctx is Process's context, which the started event is published
	// under (it outlives no call: the job ends with Process).
	ctx context.Context
	log taskLog
	// ev is the outcome event. Until run has returned and any started
	// event (a copy of it) has gone out, only its first fields are set.
	ev    task.Event
	task  task.Task
	check stateCheck

	// start (monotonic) is when the job became active; startedClaimed
	// (guarded by Runner.mu) that its started event is being published,
	// which startedSent counts until it is.
	start          time.Time
	startedClaimed bool
	startedSent    sync.WaitGroup
	// leaseLost is set once a heartbeat found the lease gone (said once);
	// extending while a heartbeat's extension of the lease is under way;
	// acking while its delivery's Ack runs (an extension may then fail,
	// and says nothing).
	leaseLost, extending, acking atomic.Bool
}

var (
	errCancelled = errors.New("task cancelled")
	errShutdown  = errors.New("runner shutting down")
)

// Outcome says how a delivery was settled.
type Outcome int

// The outcomes of Process.
const (
	// Acked: the outcome is recorded and the message removed.
	Acked Outcome = iota
	// Retry: the message comes back after a backoff for another attempt.
	Retry
	// Released: the runner gave the message back without an outcome
	// (shutdown, or an event it could not publish); it comes back soon.
	Released
)

// minStartTime is the least time a delivery's context must have left for
// its function to be started: with less (a Lambda invocation near its
// end), the message is handed back with a backoff, not started.
const minStartTime = 500 * time.Millisecond

// A task whose attempts are used up without an outcome is given up only
// once its last attempt cannot be running any more: giveUpGrace after
// that attempt's start plus the task's timeout (time for its runner to
// publish the outcome, and for clock skew between runners). Until then a
// delivery is handed back, for at most maxGiveUpWait at a time (SQS bounds
// a message's visibility; the delivery comes back and decides again).
const (
	giveUpGrace   = time.Minute
	maxGiveUpWait = time.Hour
)

// Process runs one delivery to its outcome and settles it. ctx bounds the
// whole of it: a Lambda invocation passes its deadline, and cancelling ctx
// releases the message for redelivery.
//
// The attempt a function sees is the number of times the task has started
// (Store.StartMany counts them in its status document), not the number of
// deliveries: a delivery that never starts the function (a duplicate of a
// finished task, one handed back for lack of time, a payload that could
// not be fetched yet) consumes no attempt. Only a runner without a store
// falls back to the queue's receive count.
func (r *Runner) Process(ctx context.Context, d *task.Delivery) Outcome {
	m, err := task.DecodeMessage(d.Body)
	if err != nil {
		return r.poison(ctx, d, m, err)
	}
	// The message's trace context, if any, is the parent of what runs
	// under ctx: the attempt's span, or the function's own spans.
	ctx = m.TraceContext(ctx)
	var span trace.Span
	if r.tracer != nil {
		ctx, span = r.tracer.Start(ctx, "run "+m.Function, trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithAttributes(attribute.String("drover.task_id", m.ID), attribute.String("drover.function", m.Function),
				attribute.String("drover.queue", m.Queue), attribute.String("drover.runner", r.cfg.Name)))
	}
	now := time.Now().UTC()
	j := &job{
		id: m.ID, lease: d.Lease, ctx: ctx,
		log: taskLog{base: r.log, m: m},
		ev:  task.NewEvent(m, 0, r.cfg.Name, now),
	}
	log, ev := &j.log, &j.ev
	if span != nil {
		ev.SetTrace(ctx)
		defer endRunSpan(span, ev)
	}
	ev.StartedAt = now
	// Held from now on: the heartbeat extends the lease while the
	// delivery waits for its start as well as while it runs.
	r.hold(j)
	defer r.unhold(j)
	d = r.settling(j, d)

	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < minStartTime {
		log.Warn("too little time left to start the task; handing it back", "time_left", time.Until(dl).Round(time.Millisecond))
		return r.release(context.WithoutCancel(ctx), d, r.backoff(1))
	}
	h, ok := r.mux.Handler(m.Function)
	matched, unmet := m.Requires.Match(r.traits)
	if !ok || unmet != "" {
		// Not this runner's to run: another on the queue may be able
		// to. Nothing started, so no attempt is spent (docs/routing.md).
		why := "traits " + unmet
		if !ok {
			why = "function " + m.Function
		}
		wait := r.handBackWait(d.Attempt())
		log.Info("handing the task back: this runner lacks what it needs", "lacks", why, "hidden_for", wait)
		return r.release(context.WithoutCancel(ctx), d, wait)
	}
	ev.Matched = matched

	args := m.Args
	if m.ArgsRef != "" {
		args, err = r.archive.Get(ctx, m.ArgsRef, r.cfg.PayloadLimit)
		if err != nil {
			if errors.Is(err, task.ErrNoBlob) {
				ev.Phase, ev.Error = task.PhaseFailed, fmt.Sprintf("payload %s is missing from the archive", m.ArgsRef)
				ev.StartedAt = time.Time{}
				return r.finish(ctx, d, log, ev)
			}
			// Not started: no attempt is spent.
			log.Warn("could not fetch payload; handing the message back", "ref", m.ArgsRef, "err", err)
			return r.release(context.WithoutCancel(ctx), d, r.backoff(1))
		}
	}

	attempt := d.Attempt()
	if r.checks != nil {
		ev.At = time.Now().UTC()
		ev.StartedAt = ev.At
		started, err := r.checks.start(ctx, &j.check, ev)
		switch {
		case err != nil:
			log.Warn("could not record the start in the status store; handing the message back", "err", err)
			return r.release(context.WithoutCancel(ctx), d, r.backoff(1))
		case started.State.Terminal():
			// A duplicate delivery of a finished or cancelled task.
			log.Debug("task already terminal, dropping delivery", "state", started.State)
			if started.State == task.Cancelled {
				r.retain(ctx, log, m.ID, d.Body)
			}
			d.Ack()
			return Acked
		case started.GaveUp:
			// The last attempt may still be running elsewhere (this is a
			// duplicate delivery of it): until it has had its timeout and
			// the time to report, giving up would record a failure that
			// never happened, outranking the attempt's own outcome.
			if wait := time.Until(started.LastStartedAt.Add(m.Timeout() + giveUpGrace)); wait > 0 {
				wait = min(wait, maxGiveUpWait)
				log.Info("the last attempt started recently and may still be running; handing the delivery back until it cannot be",
					"last_attempt", started.Attempt, "last_started_at", started.LastStartedAt, "timeout", m.Timeout(), "backoff", wait.Round(time.Millisecond))
				return r.release(context.WithoutCancel(ctx), d, wait)
			}
			ev.Attempt, ev.Phase, ev.StartedAt = started.Attempt, task.PhaseFailed, time.Time{}
			log.setAttempt(started.Attempt)
			ev.Error = fmt.Sprintf("gave up: %d of max_attempts %d attempts started and none recorded an outcome within its timeout %s (their runners stopped)", started.Attempt, m.MaxAttempts, m.Timeout())
			return r.finish(ctx, d, log, ev)
		}
		attempt = started.Attempt
	} else if attempt > m.MaxAttempts {
		ev.Attempt, ev.Phase, ev.Error = m.MaxAttempts, task.PhaseFailed, fmt.Sprintf("gave up: delivered %d times, max_attempts is %d (earlier attempts ended without an outcome)", attempt, m.MaxAttempts)
		log.setAttempt(m.MaxAttempts)
		ev.StartedAt = time.Time{}
		return r.finish(ctx, d, log, ev)
	}
	ev.Attempt = attempt
	log.setAttempt(attempt)

	j.task = task.Task{
		ID: m.ID, Function: m.Function, Queue: m.Queue, Args: args, Timeout: m.Timeout(),
		MaxAttempts: m.MaxAttempts, CreatedAt: m.CreatedAt, Attempt: attempt,
	}
	res, err := r.run(ctx, h, j)
	// The job is no longer active, so no started event can be claimed
	// for it any more; one already claimed goes out before the outcome
	// (and until it has, it reads ev).
	j.startedSent.Wait()
	ev.At = time.Now().UTC()
	switch {
	case err == nil:
		ev.Phase = task.PhaseSucceeded
		if len(res) > r.cfg.ResultLimit {
			key := task.ResultKey(m.ID, attempt)
			if err := r.archive.Put(ctx, key, "application/json", res); err != nil {
				log.Error("could not archive result; releasing the message", "key", key, "err", err)
				return r.release(ctx, d, r.backoff(1))
			}
			ev.ResultRef = key
		} else if len(res) > 0 {
			ev.Result = []byte(res)
		}
		return r.finish(ctx, d, log, ev)
	case errors.Is(err, errCancelled):
		log.Info("task cancelled while running")
		r.retain(ctx, log, m.ID, d.Body)
		d.Ack()
		return Acked
	case errors.Is(err, errShutdown):
		log.Info("releasing task unfinished", "reason", err)
		return r.release(context.WithoutCancel(ctx), d, 0)
	case ctx.Err() != nil:
		// The delivery's own deadline (a Lambda invocation's) cut the
		// attempt short: back off, never a hot loop at visibility 0.
		wait := r.backoff(attempt)
		log.Warn("the delivery's deadline cut the attempt short; handing it back", "reason", context.Cause(ctx), "backoff", wait)
		return r.release(context.WithoutCancel(ctx), d, wait)
	case errors.Is(err, task.ErrPermanent) || attempt >= m.MaxAttempts:
		ev.Phase, ev.Error = task.PhaseFailed, err.Error()
		return r.finish(ctx, d, log, ev)
	default:
		return r.retry(ctx, d, log, ev, err)
	}
}

// endRunSpan ends an attempt's span with what its event says.
func endRunSpan(span trace.Span, ev *task.Event) {
	span.SetAttributes(attribute.Int("drover.attempt", ev.Attempt), attribute.String("drover.phase", string(ev.Phase)))
	if ev.Phase == task.PhaseFailed || ev.Phase == task.PhaseRetrying {
		span.SetStatus(codes.Error, ev.Error)
	}
	span.End()
}

// run calls the handler with j.task under the task's timeout, with the job
// active (for heartbeats and its started event) meanwhile, and turns a
// panic into a permanent error.
func (r *Runner) run(ctx context.Context, h Handler, j *job) (res task.Result, err error) {
	t := &j.task
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	j.cancel = cancel
	r.activate(j)
	defer r.deactivate(j)

	tctx, tcancel := context.WithTimeout(ctx, t.Timeout)
	defer tcancel()
	defer func() {
		if p := recover(); p != nil {
			r.log.Error("function panicked", "task_id", t.ID, "attempt", t.Attempt, "function", t.Function, "panic", p, "stack", string(debug.Stack()))
			res, err = nil, fmt.Errorf("%s panicked: %v: %w", t.Function, p, task.ErrPermanent)
		}
	}()
	if r.metrics != nil {
		r.metrics.Started(t.Function, t.Queue)
		began := time.Now()
		defer func() { r.metrics.Ran(t.Function, t.Queue, time.Since(began)) }()
	}
	res, err = h.Handle(tctx, t)
	if cause := context.Cause(ctx); cause != nil && (errors.Is(cause, errCancelled) || errors.Is(cause, errShutdown)) {
		return nil, cause
	}
	if err != nil && tctx.Err() == context.DeadlineExceeded && ctx.Err() == nil {
		return nil, fmt.Errorf("timed out after %s: %w", t.Timeout, err)
	}
	return res, err
}

// activate registers j as running. With StartedDelay negative its started
// event goes out at once; else it is due StartedDelay from now, and the
// started timer is armed if it is not: while armed, it fires no later than
// the earliest due time of the unclaimed active jobs, which j's, the
// latest, cannot precede.
func (r *Runner) activate(j *job) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	j.start = now
	r.active[j] = struct{}{}
	switch {
	case r.cfg.StartedDelay < 0:
		r.claimStarted(j)
	case r.startedArmed:
	case r.startedTimer == nil:
		r.startedArmed = true
		r.startedTimer = time.AfterFunc(r.cfg.StartedDelay, r.startedDue)
	default:
		r.startedArmed = true
		r.startedTimer.Reset(r.cfg.StartedDelay)
	}
}

// settling returns d with its settlement wrapped so that j stops being
// held first, and any lease extension under way ends, before the message
// is acked, nacked or its visibility set for a retry: a heartbeat must
// not extend a message being deleted (SQS then calls its receipt handle
// invalid) nor override a retry's backoff.
func (r *Runner) settling(j *job, d *task.Delivery) *task.Delivery {
	w := *d
	let := func() {
		r.unhold(j)
		for j.extending.Load() {
			time.Sleep(5 * time.Millisecond) // bounded by the extension's own timeout
		}
	}
	// An ack keeps the lease extended until it returns: on SQS it waits
	// for the delete, and a delete answered after the lease ran out
	// would let the message come back and run again on another runner
	// while the outcome was not yet collected.
	// An extension racing the delete is harmless. A nack and a change of
	// visibility stop the extensions first: one landing after them would
	// hide the message again.
	w.Ack = func() {
		j.acking.Store(true)
		d.Ack()
		let()
	}
	w.Nack = func() { let(); d.Nack() }
	if d.Lease != nil {
		w.Lease = settlingLease{LeaseControl: d.Lease, let: let}
	}
	return &w
}

// settlingLease is a delivery's lease as Process settles it (see
// settling).
type settlingLease struct {
	task.LeaseControl
	let func()
}

func (l settlingLease) SetVisibility(ctx context.Context, v time.Duration) error {
	l.let()
	return l.LeaseControl.SetVisibility(ctx, v)
}

// hold registers j as held: from now until unhold, heartbeats extend its
// lease, whether or not its function has started.
func (r *Runner) hold(j *job) {
	r.mu.Lock()
	r.held[j] = struct{}{}
	r.mu.Unlock()
}

func (r *Runner) unhold(j *job) {
	r.mu.Lock()
	delete(r.held, j)
	r.mu.Unlock()
}

// deactivate unregisters j: from then on, no started event is claimed
// for it.
func (r *Runner) deactivate(j *job) {
	r.mu.Lock()
	delete(r.active, j)
	r.mu.Unlock()
}

// startedDue runs when the started timer fires: it claims the started
// events of the active jobs that have run for StartedDelay, and re-arms
// the timer for the earliest of the others, if any.
func (r *Runner) startedDue() {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	var next time.Duration
	for j := range r.active {
		if j.startedClaimed {
			continue
		}
		wait := r.cfg.StartedDelay - now.Sub(j.start)
		if wait <= 0 {
			r.claimStarted(j)
		} else if next == 0 || wait < next {
			next = wait
		}
	}
	if next == 0 {
		r.startedArmed = false
		return
	}
	r.startedTimer.Reset(next)
}

// claimStarted has j's started event published, in a goroutine of its own
// (the job's function is running meanwhile). r.mu is held, and j is
// active: Process waits for startedSent only once j is inactive, so the
// Add happens before that Wait.
func (r *Runner) claimStarted(j *job) {
	j.startedClaimed = true
	j.startedSent.Add(1)
	go func() {
		defer j.startedSent.Done()
		started := j.ev
		started.Phase = task.PhaseStarted
		r.publishQuietly(j.ctx, &j.log, &started)
	}()
}

// finish publishes a terminal event and acks the delivery; if the event
// cannot be published the message is released to come back later.
func (r *Runner) finish(ctx context.Context, d *task.Delivery, log *taskLog, ev *task.Event) Outcome {
	if err := r.publish(ctx, ev); err != nil {
		log.Error("could not publish outcome; releasing the message", "phase", ev.Phase, "err", err)
		return r.release(context.WithoutCancel(ctx), d, r.backoff(1))
	}
	if ev.Phase == task.PhaseFailed {
		r.retain(ctx, log, ev.TaskID, d.Body)
		r.metrics.Failed(ev.Function, ev.Queue)
		log.Info("task failed", "err", ev.Error)
	} else {
		r.metrics.Succeeded(ev.Function, ev.Queue)
		log.Debug("task succeeded")
	}
	d.Ack()
	return Acked
}

// retain keeps the message of a task that ended failed or cancelled in
// the archive, so that it can be retried as a new task; only such tasks
// pay for it. A failure to keep it costs the retry, not the outcome.
func (r *Runner) retain(ctx context.Context, log *taskLog, id string, body []byte) {
	if err := r.archive.Put(ctx, task.RetainedKey(id), "application/json", body); err != nil {
		log.Warn("could not keep the message of a failed or cancelled task; it cannot be retried", "err", err)
	}
}

// retry records a failed attempt and hides the message for a backoff.
func (r *Runner) retry(ctx context.Context, d *task.Delivery, log *taskLog, ev *task.Event, cause error) Outcome {
	wait := r.backoff(ev.Attempt)
	next := time.Now().UTC().Add(wait)
	ev.Phase, ev.Error, ev.NextAttemptAt = task.PhaseRetrying, cause.Error(), next
	if err := r.publish(ctx, ev); err != nil {
		log.Warn("could not publish retry event", "err", err)
	}
	r.metrics.Retried(ev.Function, ev.Queue)
	log.Info("attempt failed, retrying", "err", cause, "backoff", wait)
	r.release(context.WithoutCancel(ctx), d, wait)
	return Retry
}

// release gives a message back, visible again after wait.
func (r *Runner) release(ctx context.Context, d *task.Delivery, wait time.Duration) Outcome {
	if d.Lease != nil {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := d.Lease.SetVisibility(ctx, wait); err != nil {
			r.log.Warn("could not set the message's visibility; it returns when its lease ends", "message_id", d.ID, "err", err)
		}
	}
	d.Nack()
	return Released
}

// poison settles a message that is not a task: archived and acked, and
// recorded as failed when its task can be told.
func (r *Runner) poison(ctx context.Context, d *task.Delivery, m *task.Message, cause error) Outcome {
	key := task.PoisonKey(d.ID)
	if err := r.archive.Put(ctx, key, "application/octet-stream", d.Body); err != nil {
		r.log.Error("could not archive undecodable message; releasing it", "message_id", d.ID, "err", err)
		return r.release(context.WithoutCancel(ctx), d, r.backoff(1))
	}
	r.log.Warn("undecodable task message archived", "message_id", d.ID, "key", key, "err", cause)
	if m != nil && task.ValidID(m.ID) {
		ev := task.NewEvent(m, 0, r.cfg.Name, time.Now().UTC()) // never started: attempt 0
		ev.Phase, ev.Error = task.PhaseFailed, fmt.Sprintf("%v (message archived at %s)", cause, key)
		if err := r.publish(ctx, &ev); err != nil {
			r.log.Warn("could not publish failure of undecodable message", "task_id", m.ID, "err", err)
		}
	}
	d.Ack()
	return Acked
}

func (r *Runner) publish(ctx context.Context, ev *task.Event) error {
	b, err := task.EncodeEvent(ev)
	if err != nil {
		return fmt.Errorf("encode %s event of %s: %w", ev.Phase, ev.TaskID, err)
	}
	return r.events.Send(ctx, b, 0)
}

func (r *Runner) publishQuietly(ctx context.Context, log *taskLog, ev *task.Event) {
	if err := r.publish(ctx, ev); err != nil && ctx.Err() == nil {
		log.Warn("could not publish started event", "err", err)
	}
}

// backoff is the wait before attempt+1: BackoffBase doubling per attempt
// up to BackoffMax, with equal jitter (half fixed, half random).
func (r *Runner) backoff(attempt int) time.Duration {
	d := r.cfg.BackoffBase
	for i := 1; i < attempt && d < r.cfg.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, r.cfg.BackoffMax)
	half := d / 2
	return half + rand.N(half+1)
}

// handBackWait is how long a task handed back for the deliveries-th
// time stays hidden: 500ms doubling per delivery up to HandBackMax, with
// equal jitter.
func (r *Runner) handBackWait(deliveries int) time.Duration {
	d := 500 * time.Millisecond
	for i := 1; i < deliveries && d < r.cfg.HandBackMax; i++ {
		d *= 2
	}
	d = min(d, r.cfg.HandBackMax)
	half := d / 2
	return half + rand.N(half+1)
}

// taskLog is the logger of one attempt, with the task's attributes. It is
// built on first use: most attempts log nothing at the configured level,
// and slog's With formats its attributes up front. It is built again once
// the attempt is known (setAttempt): a delivery can log before its start
// is recorded (a lease lost while it waits), and its later lines must not
// say attempt 0.
type taskLog struct {
	base    *slog.Logger
	m       *task.Message
	attempt atomic.Int64
	l       atomic.Pointer[attemptLogger]
}

type attemptLogger struct {
	attempt int64
	l       *slog.Logger
}

func (t *taskLog) setAttempt(a int) { t.attempt.Store(int64(a)) }

func (t *taskLog) logger() *slog.Logger {
	a := t.attempt.Load()
	if p := t.l.Load(); p != nil && p.attempt == a {
		return p.l
	}
	l := t.base.With("task_id", t.m.ID, "attempt", a, "function", t.m.Function, "queue", t.m.Queue)
	t.l.Store(&attemptLogger{attempt: a, l: l})
	return l
}

func (t *taskLog) log(level slog.Level, msg string, args ...any) {
	if t.base.Enabled(context.Background(), level) {
		t.logger().Log(context.Background(), level, msg, args...)
	}
}

func (t *taskLog) Debug(msg string, args ...any) { t.log(slog.LevelDebug, msg, args...) }
func (t *taskLog) Info(msg string, args ...any)  { t.log(slog.LevelInfo, msg, args...) }
func (t *taskLog) Warn(msg string, args ...any)  { t.log(slog.LevelWarn, msg, args...) }
func (t *taskLog) Error(msg string, args ...any) { t.log(slog.LevelError, msg, args...) }
