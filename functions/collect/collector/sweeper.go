package collector

import (
	"context"
	"fmt"
	"time"

	"github.com/droverhq/drover/pkg/task"
)

// Sweep turns task messages that landed in the dead-letter queue (the
// queue's redrive policy gave up on them) into failed statuses, keeps each
// message in the archive (DeadLetterKey) for inspection and redrive
// (POST /v1/deadletters/redrive), and only then acks it: a message whose
// copy could not be archived stays in the DLQ. A task that already ended
// keeps its outcome: a failed event never outranks an earlier terminal
// one.
func (c *Collector) Sweep(ctx context.Context, ds []*task.Delivery) {
	var (
		events  []*task.Event
		holders []*task.Delivery
		ids     []string
	)
	for _, d := range ds {
		m, err := task.DecodeMessage(d.Body)
		if err != nil {
			c.poison(ctx, d, err)
			continue
		}
		e := task.NewEvent(m, 0, "dead-letter-sweeper", time.Now().UTC())
		e.Phase, e.Error = task.PhaseFailed, fmt.Sprintf("dead-lettered after %d deliveries without an outcome", d.Attempt())
		events = append(events, &e)
		holders = append(holders, d)
		ids = append(ids, m.ID)
	}
	// The failure is of the last attempt that started (the status
	// counts them), not of the delivery count: deliveries that started
	// nothing are no attempts.
	cur, err := c.store.GetMany(ctx, ids)
	if err != nil {
		c.log.Error("could not read dead-lettered tasks; they will come back", "tasks", len(events), "err", err)
		for _, d := range holders {
			d.Nack()
		}
		return
	}
	for i, st := range cur {
		if st != nil {
			events[i].Attempt, events[i].StartedAt = st.Attempt, st.StartedAt
		}
	}
	if _, err := c.store.Apply(ctx, events); err != nil {
		c.log.Error("could not record dead-lettered tasks; they will come back", "tasks", len(events), "err", err)
		for _, d := range holders {
			d.Nack()
		}
		return
	}
	for i, d := range holders {
		id := events[i].TaskID
		if err := c.archive.Put(ctx, task.DeadLetterKey(id), "application/json", d.Body); err != nil {
			c.log.Error("could not keep dead-lettered task; it stays in the DLQ", "task_id", id, "err", err)
			d.Nack()
			continue
		}
		c.metrics.DeadLettered(events[i].Function, events[i].Queue)
		c.log.Warn("dead-lettered task marked failed and kept for redrive", "task_id", id, "attempt", events[i].Attempt, "key", task.DeadLetterKey(id))
		d.Ack()
	}
}

// RunSweeper sweeps the dead-letter queue until ctx is done.
func (c *Collector) RunSweeper(ctx context.Context, open task.Opener) error {
	return Receive(ctx, c.log, "dead letters", open, 100, func(ds []*task.Delivery) {
		c.Sweep(context.WithoutCancel(ctx), ds)
	})
}
