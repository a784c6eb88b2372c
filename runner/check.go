package runner

import (
	"context"
	"sync"
	"time"

	"github.com/droverhq/drover/internal/coalesce"
	"github.com/droverhq/drover/pkg/task"
)

// stateChecks batches the starts that concurrent Process calls record
// before running a delivery (Store.StartMany: it numbers the attempt from
// the status document, and drops duplicates of finished or cancelled
// tasks) into one call per round (package coalesce): an idle runner
// writes at once and a busy one in batches, with no timer.
type stateChecks struct {
	store  Statuses
	rounds coalesce.Rounds[*stateCheck]

	// The rounds' context (see roundCtx), used only by read, which
	// rounds never run concurrently.
	ctx    context.Context
	cancel context.CancelFunc
	renew  time.Time
}

// A round's read gets at least roundTimeout - roundCtxReuse, and at most
// roundTimeout.
const (
	roundTimeout  = 10 * time.Second
	roundCtxReuse = time.Second
)

func newStateChecks(store Statuses) *stateChecks {
	c := &stateChecks{store: store}
	c.rounds.Run = c.read
	return c
}

type stateCheck struct {
	ctx  context.Context // the caller's
	ev   *task.Event
	res  task.Started
	err  error
	done chan struct{} // receives one token when state and err are set
}

// doneChans recycles stateCheck.done channels (buffered, empty when put
// back), one allocation fewer per delivery.
var doneChans = sync.Pool{New: func() any { return make(chan struct{}, 1) }}

// start records the start of ev's execution (see Store.StartMany), with
// k, which the caller provides to save an allocation, as the request.
func (c *stateChecks) start(ctx context.Context, k *stateCheck, ev *task.Event) (task.Started, error) {
	done := doneChans.Get().(chan struct{})
	*k = stateCheck{ctx: ctx, ev: ev, done: done}
	c.rounds.Add(k)
	select {
	case <-done:
		doneChans.Put(done)
		return k.res, k.err
	case <-ctx.Done():
		if c.rounds.Withdraw(k) {
			// No round took k, so none will send on done.
			doneChans.Put(done)
			return task.Started{}, ctx.Err()
		}
		// A round has it: its start may be written, so wait for it.
		<-done
		doneChans.Put(done)
		return k.res, k.err
	}
}

// roundCtx returns the context a round reads under. The batch serves
// several callers, so none of their contexts should cut it short: it has
// a timeout of its own, shared by the rounds that start within
// roundCtxReuse: a context per round cost 3 allocations and a timer per
// round, which on a busy runner is nearly one round per task.
func (c *stateChecks) roundCtx() context.Context {
	now := time.Now()
	if c.ctx == nil || c.ctx.Err() != nil || now.After(c.renew) {
		if c.cancel != nil {
			c.cancel()
		}
		c.ctx, c.cancel = context.WithTimeout(context.Background(), roundTimeout)
		c.renew = now.Add(roundCtxReuse)
	}
	return c.ctx
}

// A round calls StartMany again, with the same events, until it answers,
// for up to startRetryFor, or until none of the round's callers waits any
// more: a call that failed may still have written its starts (a deadline
// met after the write, a lost answer), and only a call again with the
// same events finds them (Store.StartMany), so that no attempt is spent
// on an execution that never ran. The deliveries are held meanwhile, their
// leases extended. Three tries within a few seconds were not enough: a
// loaded make test saw moto leave BatchGetItem unanswered past three 10 s
// deadlines, and tasks ended at attempt 2, or gave up, for attempts that
// never ran.
const (
	startRetryFor  = time.Minute
	startBackoff   = 200 * time.Millisecond
	startBackoffTo = 5 * time.Second
)

func (c *stateChecks) read(batch []*stateCheck) {
	evs := make([]*task.Event, len(batch))
	for i, k := range batch {
		evs[i] = k.ev
	}
	res, err := c.store.StartMany(c.roundCtx(), evs)
	for end, wait := time.Now().Add(startRetryFor), startBackoff; err != nil && time.Now().Add(wait).Before(end) && waiting(batch); wait = min(2*wait, startBackoffTo) {
		time.Sleep(wait)
		res, err = c.store.StartMany(c.roundCtx(), evs)
	}
	for i, k := range batch {
		if err != nil {
			k.err = err
		} else {
			k.res = res[i]
		}
		k.done <- struct{}{}
	}
}

// waiting reports whether a caller of the batch still waits for its
// start: one whose context has ended (a runner stopping, a Lambda
// invocation's deadline) takes its delivery back either way.
func waiting(batch []*stateCheck) bool {
	for _, k := range batch {
		if k.ctx.Err() == nil {
			return true
		}
	}
	return false
}
