// Package collector is the collect function: it applies runner events to
// the status store, and its dead-letter sweeper turns task messages that
// the queue gave up on into failed statuses. It batches: one read and one
// revision-checked write per task per batch, however many events the
// batch holds for it (the monotonic rule itself is task.Store.Apply).
// Env and Run are the collect process (functions/collect, drover
// collect).
package collector

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/droverhq/drover/internal/metrics"
	"github.com/droverhq/drover/pkg/task"
)

// Collector writes statuses from events.
type Collector struct {
	store   *task.Store
	archive *task.Archive
	log     *slog.Logger
	// MaxBatch bounds how many deliveries are applied together (500).
	MaxBatch int
	metrics  *metrics.Collector
	// Workflow moves groups and chains on after their tasks' terminal
	// events are applied; it enqueues released steps on Workflow.Tasks,
	// which must be set where workflows are used.
	Workflow *task.Workflow
	// tracer is nil when tracing is off (see Trace).
	tracer trace.Tracer
}

// Trace makes the collector continue the traces its events carry: each
// event with a trace context is applied inside a "collect <phase>" span,
// a child of the attempt's span. Events without one start no span. Call
// it before Run; a nil tp turns tracing off.
func (c *Collector) Trace(tp trace.TracerProvider) {
	c.tracer = nil
	if tp != nil {
		c.tracer = tp.Tracer("github.com/droverhq/drover/functions/collect")
	}
}

// Instrument registers the collector's Prometheus metrics on reg
// (terminal counts, queue wait and submit→terminal histograms,
// dead-lettered): it counts each task once, when the write that made it
// terminal succeeds. Call it before Run.
func (c *Collector) Instrument(reg prometheus.Registerer) {
	c.metrics = metrics.NewCollector(reg)
	if c.metrics == nil {
		return
	}
	m := c.metrics
	c.store.Terminal = func(st *task.Status) {
		m.Terminal(st.Function, st.Queue, string(st.State), st.CreatedAt, st.StartedAt, st.FinishedAt)
	}
}

// New returns a Collector.
func New(store *task.Store, archive *task.Archive, log *slog.Logger) *Collector {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Collector{
		store: store, archive: archive, log: log, MaxBatch: 500,
		Workflow: &task.Workflow{Store: store, Archive: archive, Log: log},
	}
}

// Process applies a batch of deliveries from the events queue and settles
// each: acked once its event is in the store, nacked if the store write
// failed (it comes back), acked and archived if it is not an event. It
// returns the task documents it wrote, as written.
func (c *Collector) Process(ctx context.Context, ds []*task.Delivery) []*task.Status {
	var (
		events  []*task.Event
		holders []*task.Delivery
		runners = map[string]*task.RunnerInfo{}
		rHold   []*task.Delivery
	)
	for _, d := range ds {
		e, ri, err := task.DecodeEvent(d.Body)
		switch {
		case err != nil:
			c.poison(ctx, d, err)
		case e != nil:
			events = append(events, e)
			holders = append(holders, d)
		default:
			if old, ok := runners[ri.ID]; !ok || old.SeenAt.Before(ri.SeenAt) {
				runners[ri.ID] = ri
			}
			rHold = append(rHold, d)
		}
	}
	var spans []trace.Span
	if c.tracer != nil {
		spans = c.startSpans(ctx, events)
	}
	written, linked, err := c.store.ApplyLinked(ctx, events)
	if err == nil && len(linked) > 0 {
		// Acked only once the workflow step is done: a crash in between
		// brings the events back, and the step is taken up again.
		if err = c.Workflow.Advance(ctx, linked); err != nil {
			err = fmt.Errorf("workflow step after %d ended tasks (first %s): %w", len(linked), linked[0].ID, err)
		}
	}
	for _, span := range spans {
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}
	if err != nil {
		c.log.Error("could not apply events; they will come back", "events", len(events), "err", err)
		for _, d := range holders {
			d.Nack()
		}
	} else {
		for _, d := range holders {
			d.Ack()
		}
	}
	var failed error
	for _, ri := range runners {
		if err := c.store.PutRunner(ctx, ri); err != nil {
			failed = err
		}
	}
	for _, d := range rHold {
		if failed != nil {
			d.Nack()
		} else {
			d.Ack()
		}
	}
	if failed != nil {
		c.log.Warn("could not record runner heartbeats", "err", failed)
	}
	return written
}

// startSpans starts the span of each event that carries a trace context.
func (c *Collector) startSpans(ctx context.Context, events []*task.Event) []trace.Span {
	var spans []trace.Span
	for _, e := range events {
		if e.Traceparent == "" {
			continue
		}
		_, span := c.tracer.Start(e.TraceContext(ctx), "collect "+string(e.Phase), trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithAttributes(attribute.String("drover.task_id", e.TaskID), attribute.String("drover.function", e.Function),
				attribute.String("drover.queue", e.Queue), attribute.Int("drover.attempt", e.Attempt),
				attribute.String("drover.phase", string(e.Phase))))
		spans = append(spans, span)
	}
	return spans
}

func (c *Collector) poison(ctx context.Context, d *task.Delivery, cause error) {
	key := task.PoisonKey(d.ID)
	if err := c.archive.Put(ctx, key, "application/octet-stream", d.Body); err != nil {
		c.log.Error("could not archive undecodable event; it will come back", "message_id", d.ID, "err", err)
		d.Nack()
		return
	}
	c.log.Warn("undecodable event archived", "message_id", d.ID, "key", key, "err", cause)
	d.Ack()
}

// Run receives events until ctx is done, applying them in batches: the
// first delivery starts a batch, which then takes whatever else is
// already waiting, up to MaxBatch. It reopens the subscription after
// failures.
func (c *Collector) Run(ctx context.Context, open task.Opener) error {
	return Receive(ctx, c.log, "events", open, c.MaxBatch, func(ds []*task.Delivery) {
		// One call that never returns (a half-open connection: the AWS
		// SDK sets no response deadline) must not stall every later
		// event behind it: a batch cut short is nacked and comes back.
		bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), batchTimeout)
		defer cancel()
		c.Process(bctx, ds)
	})
}

// batchTimeout bounds the processing of one batch of events by Run: far
// more than a batch takes on a slow backend (a few calls of a second or
// so each), so that only a hung call meets it.
const batchTimeout = 2 * time.Minute

// Receive is the collector's receive loop, which Run and RunSweeper
// run: until ctx is done, a receiver feeds a channel from the
// subscription open opens (reopened after failures; what names it in
// logs) and one consumer hands process batches of what is waiting, the
// first delivery starting a batch of up to maxBatch.
func Receive(ctx context.Context, log *slog.Logger, what string, open task.Opener, maxBatch int, process func([]*task.Delivery)) error {
	ch := make(chan *task.Delivery, maxBatch)
	subs := task.NewReopener(open, log, what)
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(ch)
		var failed error
		for seen := -1; ctx.Err() == nil; {
			sub, v, err := subs.Current(ctx, seen, failed)
			if err != nil {
				break
			}
			seen = v
			// An in-process queue hands out all that is ready in one
			// call; a remote one's calls (SQS: up to ten each) overlap,
			// so that the collector keeps up with many runners'
			// heartbeats and events.
			receivers := 4
			if sub.InProcess() {
				receivers = 1
			}
			failed = receiveBatchesInto(ctx, sub, ch, maxBatch, receivers)
		}
		_ = subs.Close(ctx)
	})
	batch := make([]*task.Delivery, 0, maxBatch)
	for d := range ch {
		batch = append(batch[:0], d)
	fill:
		for len(batch) < maxBatch {
			select {
			case d, ok := <-ch:
				if !ok {
					break fill
				}
				batch = append(batch, d)
			default:
				break fill
			}
		}
		process(batch)
	}
	wg.Wait()
	return nil
}

// receiveBatchesInto receives with n goroutines until ctx is done or
// receiving fails, returning the failure: whole batches from a Batched
// subscription, one delivery per call from another.
func receiveBatchesInto(ctx context.Context, sub *task.Subscription, ch chan<- *task.Delivery, max, n int) error {
	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for {
				ds, err := sub.ReceiveBatch(rctx, max)
				if err != nil {
					cancel(err)
					return
				}
				for i, d := range ds {
					select {
					case ch <- d:
					case <-rctx.Done():
						for _, d := range ds[i:] {
							d.Nack()
						}
						return
					}
				}
			}
		})
	}
	wg.Wait()
	return context.Cause(rctx)
}
