package runner

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/droverhq/drover/pkg/task"
)

// Queue is one queue a runner takes tasks from.
type Queue struct {
	Name string
	// Weight is the queue's share in the weighted mode (1 if below 1).
	Weight int
	Open   task.Opener
}

// idleWait is how long a worker serving several queues, all found
// empty, waits on one of them before it tries them all again: a message
// on another queue waits at most this long for an idle runner.
const idleWait = time.Second

// picker decides which queue a free worker tries first. In the weighted
// mode it is a smooth weighted round-robin (nginx's): over any run of
// sum-of-weights picks each queue comes first exactly its weight's
// times, evenly spread, so under load the shares taken are the weights'
// and no queue starves. In the strict mode the first queue listed that
// has a message wins.
type picker struct {
	strict  bool
	weights []int
	total   int
	// byPriority lists the queues by weight, highest first (stable):
	// the order the others are tried in when the first pick is empty.
	byPriority []int

	mu      sync.Mutex
	current []int
}

func newPicker(qs []Queue, strict bool) *picker {
	p := &picker{strict: strict, weights: make([]int, len(qs)), current: make([]int, len(qs))}
	for i, q := range qs {
		p.weights[i] = max(q.Weight, 1)
		p.total += p.weights[i]
		p.byPriority = append(p.byPriority, i)
	}
	if !strict {
		slices.SortStableFunc(p.byPriority, func(a, b int) int { return p.weights[b] - p.weights[a] })
	}
	return p
}

// order fills buf with the queue indexes in the order to try them.
func (p *picker) order(buf []int) []int {
	buf = buf[:0]
	if p.strict || len(p.weights) == 1 {
		return append(buf, p.byPriority...)
	}
	p.mu.Lock()
	best := 0
	for i, w := range p.weights {
		p.current[i] += w
		if p.current[i] > p.current[best] {
			best = i
		}
	}
	p.current[best] -= p.total
	p.mu.Unlock()
	buf = append(buf, best)
	for _, i := range p.byPriority {
		if i != best {
			buf = append(buf, i)
		}
	}
	return buf
}

// receiver is one worker's view of the queues: each queue's reopener
// with the version it last saw and the failure it last met.
type receiver struct {
	subs   []*task.Reopener
	seen   []int
	failed []error
	pick   *picker
	buf    []int
}

func newReceiver(subs []*task.Reopener, pick *picker) *receiver {
	rc := &receiver{subs: subs, seen: make([]int, len(subs)), failed: make([]error, len(subs)), pick: pick}
	for i := range rc.seen {
		rc.seen[i] = -1
	}
	return rc
}

// next returns the next delivery for a free worker, or nil (ctx done, a
// failed receive, or nothing within idleWait on several queues). With one
// queue it waits for a message as long as it takes.
func (rc *receiver) next(ctx context.Context) *task.Delivery {
	if len(rc.subs) == 1 {
		s := rc.current(ctx, 0)
		if s == nil {
			return nil
		}
		d, err := s.ReceiveNow(ctx)
		if err != nil {
			rc.failed[0] = err
			return nil
		}
		return d
	}
	rc.buf = rc.pick.order(rc.buf)
	for _, i := range rc.buf {
		if d := rc.try(ctx, i, 0); d != nil {
			return d
		}
	}
	return rc.try(ctx, rc.buf[0], idleWait)
}

func (rc *receiver) current(ctx context.Context, i int) *task.Subscription {
	s, v, err := rc.subs[i].Current(ctx, rc.seen[i], rc.failed[i])
	if err != nil {
		return nil
	}
	rc.seen[i], rc.failed[i] = v, nil
	return s
}

func (rc *receiver) try(ctx context.Context, i int, wait time.Duration) *task.Delivery {
	s := rc.current(ctx, i)
	if s == nil {
		return nil
	}
	d, err := s.ReceiveWithin(ctx, wait)
	if err != nil {
		if ctx.Err() == nil {
			rc.failed[i] = err
		}
		return nil
	}
	return d
}
