package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"

	"github.com/droverhq/drover/internal/metrics"
	"github.com/droverhq/drover/pkg/task"
)

// Service is the submit service under the HTTP API: it validates delays
// against the topic, claims idempotency keys, archives large arguments
// (claim check), publishes the task messages, writes the queued statuses
// and rolls back what it did for tasks it could not enqueue. Its callers
// (the HTTP handlers, tests) pass specs already decoded and validated.
type Service struct {
	queues  *task.Queues
	archive *task.Archive
	store   *task.Store
	log     *slog.Logger
	cfg     Config
	metrics *metrics.Dispatch
	// tracer is nil when tracing is off.
	tracer trace.Tracer

	runnerCache runnerCache
}

// NewService returns a Service that enqueues on tasks, archives large
// payloads in archive and writes statuses and idempotency keys to store.
// Of cfg it uses PayloadLimit, IdempotencyWindow, SendTimeout and
// Queues: given, tasks go to the topics of their queues there, and tasks
// is not used.
func NewService(tasks *task.Topic, archive *task.Archive, store *task.Store, log *slog.Logger, cfg Config) *Service {
	cfg.defaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	queues := cfg.Queues
	if queues == nil {
		queues = task.OneQueue(tasks)
	}
	svc := &Service{queues: queues, archive: archive, store: store, log: log, cfg: cfg}
	if cfg.Metrics != nil {
		svc.metrics = metrics.NewDispatch(cfg.Metrics)
	}
	if cfg.TracerProvider != nil {
		svc.tracer = cfg.TracerProvider.Tracer("github.com/droverhq/drover/functions/dispatch")
	}
	return svc
}

// Submit enqueues validated, normalized specs and returns their statuses
// in order. A spec whose idempotency key is already held returns the
// first task's status and enqueues nothing. If some tasks cannot be
// enqueued, Submit rolls back what it did for them and returns an error;
// tasks already enqueued stay enqueued and are named in the error.
func (s *Service) Submit(ctx context.Context, specs []task.Spec) ([]*task.Status, error) {
	now := time.Now().UTC()
	for i := range specs {
		prefix := ""
		if len(specs) > 1 {
			prefix = fmt.Sprintf("tasks[%d].", i)
		}
		if err := s.checkQueue(prefix, &specs[i]); err != nil {
			return nil, err
		}
	}

	if err := repeatedKeys(specs); err != nil {
		return nil, err
	}
	sts := make([]*task.Status, len(specs))
	fresh := make([]bool, len(specs))
	claims := make([]*task.KeyClaim, len(specs))
	held := make([]*task.Status, len(specs))
	// Keys are claimed concurrently: a batch of keyed tasks must not cost
	// one store round trip after another.
	var cg errgroup.Group
	cg.SetLimit(16)
	for i, sp := range specs {
		sts[i] = &task.Status{
			ID: task.NewID(now), Function: task.Intern(sp.Function), Queue: task.Intern(sp.Queue), State: task.Queued,
			MaxAttempts: sp.MaxAttempts, CreatedAt: now, IdempotencyKey: sp.IdempotencyKey,
		}
		sts[i].SetRequires(sp.Requires)
		if sp.IdempotencyKey == "" {
			continue
		}
		field := "idempotency_key"
		if len(specs) > 1 {
			field = fmt.Sprintf("tasks[%d].idempotency_key", i)
		}
		cg.Go(func() error {
			c, h, err := s.claimKey(ctx, field, sp, sts[i])
			claims[i], held[i] = c, h
			return err
		})
	}
	claimErr := cg.Wait()
	for i := range specs {
		fresh[i] = held[i] == nil && (specs[i].IdempotencyKey == "" || claims[i] != nil)
	}
	if claimErr != nil {
		for i, c := range claims {
			if c != nil && fresh[i] {
				if err := s.store.ReleaseKey(context.WithoutCancel(ctx), c); err != nil {
					s.log.Warn("could not release idempotency key", "task_id", sts[i].ID, "err", err)
				}
			}
		}
		return nil, claimErr
	}
	for i := range specs {
		if held[i] != nil {
			sts[i] = held[i]
		}
	}

	sctx, cancel := context.WithTimeout(ctx, s.cfg.SendTimeout)
	defer cancel()
	var (
		idx    []int
		bodies [][]byte
		queues []string
		delays []time.Duration
		g      errgroup.Group
		// spans, when tracing, are the tasks' submit spans, as idx.
		spans []trace.Span
	)
	defer func() {
		for _, sp := range spans {
			sp.End()
		}
	}()
	g.SetLimit(16)
	for i, sp := range specs {
		if !fresh[i] {
			continue
		}
		m := &task.Message{
			ID: sts[i].ID, Function: sp.Function, Queue: sp.Queue, Args: sp.Args,
			TimeoutMS: time.Duration(sp.Timeout).Milliseconds(), MaxAttempts: sp.MaxAttempts, CreatedAt: now,
			Requires: sp.Requires,
		}
		if s.tracer != nil {
			tctx, span := s.tracer.Start(ctx, "submit "+sp.Function, trace.WithSpanKind(trace.SpanKindProducer),
				trace.WithAttributes(attribute.String("drover.task_id", m.ID), attribute.String("drover.function", sp.Function),
					attribute.String("drover.queue", sp.Queue)))
			m.SetTrace(tctx)
			spans = append(spans, span)
		}
		if len(sp.Args) > s.cfg.PayloadLimit {
			m.Args, m.ArgsRef = nil, task.PayloadKey(m.ID)
			args := sp.Args
			g.Go(func() error { return s.archive.Put(sctx, m.ArgsRef, "application/json", args) })
		}
		b, err := task.EncodeMessage(m)
		if err != nil {
			s.rollback(ctx, specs, sts, fresh, claims)
			return nil, fmt.Errorf("encode task %s: %w", m.ID, err)
		}
		idx, bodies, delays = append(idx, i), append(bodies, b), append(delays, time.Duration(sp.Delay))
		queues = append(queues, sp.Queue)
	}
	if err := g.Wait(); err != nil {
		s.rollback(ctx, specs, sts, fresh, claims)
		return nil, fmt.Errorf("archive payload: %w", err)
	}
	failed := s.queues.SendAll(sctx, queues, bodies, delays)
	for k, span := range spans {
		if err, bad := failed[k]; bad {
			span.RecordError(err)
			span.SetStatus(codes.Error, "not enqueued")
		}
	}
	var created []*task.Status
	for k, i := range idx {
		if _, bad := failed[k]; !bad {
			created = append(created, sts[i])
			fresh[i] = false // enqueued: not to be rolled back
			s.metrics.Submitted(sts[i].Function, sts[i].Queue)
		}
	}
	if err := s.store.CreateMany(context.WithoutCancel(ctx), created); err != nil {
		// The tasks are enqueued; the collector creates their documents
		// from their events.
		s.log.Warn("could not write queued statuses", "tasks", len(created), "err", err)
	}
	var commits errgroup.Group
	commits.SetLimit(16)
	for k, i := range idx {
		if _, bad := failed[k]; bad || claims[i] == nil {
			continue
		}
		// Enqueued: the key's claim is committed to its task.
		commits.Go(func() error {
			err := s.store.CommitKey(context.WithoutCancel(ctx), claims[i])
			switch {
			case errors.Is(err, task.ErrKeyTaken):
				// Fenced off by a request that found the claim pending
				// too long: this task is cancelled and never runs; the
				// key names another.
				s.log.Warn("idempotency claim was taken over before it was committed", "task_id", sts[i].ID, "err", err)
				if h, err := s.replay(context.WithoutCancel(ctx), claims[i].Key); err == nil && h != nil {
					sts[i] = h
				}
			case err != nil:
				// The claim stays pending: a request with the key waits,
				// finds the task's document and commits the claim for it.
				s.log.Warn("could not commit idempotency claim", "task_id", sts[i].ID, "err", err)
			}
			return nil
		})
	}
	_ = commits.Wait()
	if len(failed) > 0 {
		// A send that timed out may still have been enqueued: its
		// payload and its key's claim are kept (the claim pending, for
		// a retry with the key to find the task, or fence it off).
		unknown := 0
		for k, i := range idx {
			if err, bad := failed[k]; bad && task.MaybeSent(err) {
				fresh[i] = false
				unknown++
			}
		}
		s.rollback(context.WithoutCancel(ctx), specs, sts, fresh, claims)
		var first error
		for _, err := range failed {
			first = err
			break
		}
		return nil, &EnqueueError{Failed: len(failed), Of: len(idx), Unknown: unknown, First: first, Enqueued: created}
	}
	return sts, nil
}

// EnqueueError is Submit's error when some tasks could not be enqueued:
// nothing was kept for them, and the tasks in Enqueued stay enqueued.
type EnqueueError struct {
	Failed, Of int   // tasks that failed, of those sent
	First      error // one of the failures
	// Unknown of the failed tasks met a timeout or a lost connection:
	// they may have been enqueued, and their payloads and keys' claims
	// are kept.
	Unknown  int
	Enqueued []*task.Status
}

func (e *EnqueueError) Error() string {
	if e.Unknown > 0 {
		return fmt.Sprintf("%d of %d tasks could not be enqueued (%v); for %d of them the queue did not answer, so they may have been: resubmit with the same idempotency keys to learn which", e.Failed, e.Of, e.First, e.Unknown)
	}
	return fmt.Sprintf("%d of %d tasks could not be enqueued (%v); nothing was kept for them", e.Failed, e.Of, e.First)
}

func (e *EnqueueError) Unwrap() error { return e.First }

// rollback undoes the side effects of tasks marked fresh (not enqueued):
// archived payloads and idempotency claims.
func (s *Service) rollback(ctx context.Context, specs []task.Spec, sts []*task.Status, fresh []bool, claims []*task.KeyClaim) {
	for i, f := range fresh {
		if !f || sts[i] == nil {
			continue
		}
		if len(specs[i].Args) > s.cfg.PayloadLimit {
			if err := s.archive.Delete(ctx, task.PayloadKey(sts[i].ID)); err != nil {
				s.log.Warn("rollback: could not delete payload", "task_id", sts[i].ID, "err", err)
			}
		}
		if claims[i] != nil {
			if err := s.store.ReleaseKey(ctx, claims[i]); err != nil {
				s.log.Warn("rollback: could not release idempotency key", "task_id", sts[i].ID, "err", err)
			}
		}
	}
}

// runnerCache holds the live runners for a moment: statuses are read
// far more often than runners come and go.
type runnerCache struct {
	mu sync.Mutex
	at time.Time
	rs []*task.RunnerInfo
}

// runnerCacheFor is how long the live runners are kept.
const runnerCacheFor = time.Second

// liveRunners returns the runners seen within RunnerWindow.
func (s *Service) liveRunners(ctx context.Context) ([]*task.RunnerInfo, error) {
	c := &s.runnerCache
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.at) < runnerCacheFor {
		return c.rs, nil
	}
	rs, err := s.store.Runners(ctx, time.Now().Add(-s.cfg.RunnerWindow))
	if err != nil {
		return nil, err
	}
	c.at, c.rs = time.Now(), rs
	return rs, nil
}

// Explain says in the Waiting of each queued or retrying status why it
// cannot start, when no live runner on its queue has its function and
// the traits it requires (task.WhyWaiting). Without the runners (the
// store did not answer) it says nothing.
func (s *Service) Explain(ctx context.Context, sts ...*task.Status) {
	need := false
	for _, st := range sts {
		need = need || (st != nil && (st.State == task.Queued || st.State == task.Retrying))
	}
	if !need {
		return
	}
	rs, err := s.liveRunners(ctx)
	if err != nil {
		return
	}
	for _, st := range sts {
		if st != nil && (st.State == task.Queued || st.State == task.Retrying) {
			st.Waiting = task.WhyWaiting(rs, st.Queue, st.Function, st.Requires)
		}
	}
}
