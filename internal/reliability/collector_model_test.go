package reliability

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/droverhq/drover/functions/collect/collector"
	"github.com/droverhq/drover/pkg/task"
)

// history is the events one task's life produced.
func history(rng *rand.Rand, id string, t0 time.Time) []*task.Event {
	attempts := 1 + rng.IntN(4)
	base := task.Event{TaskID: id, Function: "f", Queue: "default", MaxAttempts: 5, CreatedAt: t0}
	var out []*task.Event
	at := t0
	next := func() time.Time { at = at.Add(time.Duration(1+rng.IntN(1000)) * time.Millisecond); return at }
	for a := 1; a <= attempts; a++ {
		runner := fmt.Sprintf("r%d", rng.IntN(3))
		started := next()
		ev := func(p task.Phase) *task.Event {
			e := base
			e.Attempt, e.Phase, e.Runner, e.At, e.StartedAt = a, p, runner, next(), started
			return &e
		}
		out = append(out, ev(task.PhaseStarted))
		if a < attempts {
			e := ev(task.PhaseRetrying)
			e.Error = fmt.Sprintf("attempt %d failed", a)
			out = append(out, e)
			continue
		}
		switch rng.IntN(4) {
		case 0, 1:
			e := ev(task.PhaseSucceeded)
			e.Result = fmt.Appendf(nil, `{"a":%d,"r":%q}`, a, runner)
			out = append(out, e)
		case 2:
			e := ev(task.PhaseFailed)
			e.Error = "for good"
			out = append(out, e)
		case 3:
			e := ev(task.PhaseSucceeded)
			e.Result = []byte(`1`)
			out = append(out, e)
			// A duplicate execution by another runner, finishing later.
			d := *e
			d.Runner, d.At, d.Result = "dup-"+runner, next(), []byte(`2`)
			out = append(out, &d)
		}
		if rng.IntN(8) == 0 {
			c := base
			c.Attempt, c.Phase, c.Runner, c.At, c.Error = a, task.PhaseCancelled, runner, next(), "cancelled"
			out = append(out, &c)
		}
	}
	return out
}

// modelBest is the DESIGN.md rule, written out independently of
// machine.go: terminal never regresses (a cancellation beats any other
// outcome; otherwise the earliest attempt's outcome stands, succeeded over
// failed); among non-terminal events the later attempt, then the later
// phase wins; remaining ties go to the earlier (terminal) or later
// (non-terminal) time, then the runner name.
func modelBest(evs []*task.Event) *task.Event {
	rank := map[task.Phase]int{task.PhaseStarted: 1, task.PhaseRetrying: 2, task.PhaseFailed: 3, task.PhaseSucceeded: 4, task.PhaseCancelled: 5}
	better := func(a, b *task.Event) bool {
		at, bt := a.Phase.State().Terminal(), b.Phase.State().Terminal()
		if at != bt {
			return at
		}
		if at {
			if (a.Phase == task.PhaseCancelled) != (b.Phase == task.PhaseCancelled) {
				return a.Phase == task.PhaseCancelled
			}
			if a.Attempt != b.Attempt {
				return a.Attempt < b.Attempt
			}
			if a.Phase != b.Phase {
				return rank[a.Phase] > rank[b.Phase]
			}
			if !a.At.Equal(b.At) {
				return a.At.Before(b.At)
			}
			return a.Runner < b.Runner
		}
		if a.Attempt != b.Attempt {
			return a.Attempt > b.Attempt
		}
		if a.Phase != b.Phase {
			return rank[a.Phase] > rank[b.Phase]
		}
		if !a.At.Equal(b.At) {
			return a.At.After(b.At)
		}
		return a.Runner > b.Runner
	}
	best := evs[0]
	for _, e := range evs[1:] {
		if better(e, best) {
			best = e
		}
	}
	return best
}

// feed hands events to col in random batches as deliveries, re-feeding
// what it nacks, until every one is acked.
func feed(t *testing.T, col *collector.Collector, evs []*task.Event, rng *rand.Rand) {
	type item struct{ body []byte }
	queue := make([][]byte, 0, len(evs))
	for _, e := range evs {
		b, err := task.EncodeEvent(e)
		if err != nil {
			t.Fatal(err)
		}
		queue = append(queue, b)
	}
	for len(queue) > 0 {
		n := min(len(queue), 1+rng.IntN(200))
		batch, rest := queue[:n], queue[n:]
		var mu sync.Mutex
		var again [][]byte
		ds := make([]*task.Delivery, len(batch))
		for i, b := range batch {
			ds[i] = &task.Delivery{ID: fmt.Sprint(i), Body: b, Ack: func() {}, Nack: func() { mu.Lock(); again = append(again, b); mu.Unlock() }}
		}
		col.Process(context.Background(), ds)
		queue = append(append([][]byte{}, rest...), again...)
	}
}

// TestCollectorPermutations is scenario 4: random histories, every event
// duplicated 1–3 times, shuffled, applied in random batches by one
// collector (4a) and by two collectors racing over the same events (4b);
// every final document must be the model's.
func TestCollectorPermutations(t *testing.T) {
	forEach(t, func(t *testing.T, b backend) {
		for _, racing := range []bool{false, true} {
			t.Run(fmt.Sprintf("racing=%v", racing), func(t *testing.T) {
				t.Parallel()
				start := time.Now()
				e := b.newEnv(t, envOpts{NoDispatch: true})
				n := sc.perms
				if b.name() == "moto" {
					n = sc.permsAWS
				}
				if racing {
					n = max(n/5, 50)
				}
				rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 4))
				t0 := time.Now().UTC().Truncate(time.Millisecond)
				ids := make([]string, n)
				hist := map[string][]*task.Event{}
				var all []*task.Event
				var queued []*task.Status
				for i := range ids {
					ids[i] = task.NewID(t0)
					hist[ids[i]] = history(rng, ids[i], t0)
					for _, ev := range hist[ids[i]] {
						for range 1 + rng.IntN(3) {
							all = append(all, ev)
						}
					}
					if i%2 == 0 { // half have the dispatcher's queued document first
						queued = append(queued, &task.Status{ID: ids[i], Function: "f", Queue: "default", MaxAttempts: 5, CreatedAt: t0})
					}
				}
				if err := e.Store().CreateMany(context.Background(), queued); err != nil {
					t.Fatal(err)
				}
				shuffled := func() []*task.Event {
					c := append([]*task.Event{}, all...)
					rng.Shuffle(len(c), func(i, j int) { c[i], c[j] = c[j], c[i] })
					return c
				}
				if racing {
					var wg sync.WaitGroup
					for k := range 2 {
						evs := shuffled()
						r := rand.New(rand.NewPCG(uint64(k), 9))
						wg.Go(func() { feed(t, collector.New(e.Store(), e.Archive(), nil), evs, r) })
					}
					wg.Wait()
				} else {
					feed(t, collector.New(e.Store(), e.Archive(), nil), shuffled(), rng)
				}
				docs := waitTerminal(t, e.Store(), ids, time.Second)
				wrong, present := 0, 0
				for _, id := range ids {
					d := docs[id]
					if d == nil {
						continue
					}
					present++
					m := modelBest(hist[id])
					if d.State != m.Phase.State() || d.Attempt != m.Attempt || d.Runner != m.Runner || d.Error != m.Error ||
						string(d.Result) != string(m.Result) || !d.FinishedAt.Equal(finishedAt(m)) || !d.StartedAt.Equal(m.StartedAt) {
						wrong++
						if wrong <= 5 {
							t.Errorf("task %s: got %s attempt %d runner %s error %q result %s started %v; model %s attempt %d runner %s error %q result %s started %v",
								id, d.State, d.Attempt, d.Runner, d.Error, d.Result, d.StartedAt, m.Phase, m.Attempt, m.Runner, m.Error, m.Result, m.StartedAt)
						}
					}
				}
				r := row{backend: b.name(), submitted: n, terminal: present, wrong: wrong, took: time.Since(start), pass: present == n && wrong == 0}
				if racing {
					r.scenario = "4b two collectors racing"
					r.note = fmt.Sprintf("%d events (with duplicates) fed to each of 2 concurrent collectors; no lost update", len(all))
				} else {
					r.scenario = "4a collector, random permutations"
					r.note = fmt.Sprintf("%d histories, %d events with duplicates, shuffled, random batches; final = model", n, len(all))
				}
				// "terminal" here counts documents present: some model
				// finals are non-terminal only if the history ends running,
				// which histories never do.
				report(t, r)
			})
		}
	})
}

func finishedAt(e *task.Event) time.Time {
	if e.Phase.State().Terminal() {
		return e.At
	}
	return time.Time{}
}
