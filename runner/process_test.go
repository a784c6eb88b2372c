package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"gocloud.dev/blob/memblob"
	"gocloud.dev/docstore"

	"github.com/droverhq/drover/pkg/memq"
	"github.com/droverhq/drover/pkg/memstore"
	"github.com/droverhq/drover/pkg/task"
)

// procEnv is a Runner over the in-process queue (memq) and status store
// (memstore), with the collaborators a test of Process needs.
type procEnv struct {
	r       *Runner
	tasks   *task.Topic
	sub     *task.Subscription // tasks
	events  *task.Subscription
	eventsQ string
	tasksQ  string
	store   *task.Store
	coll    *docstore.Collection // store's collection
}

var procSeq atomic.Int64

// setupProcess returns a runner configured by cfg with the functions
// register adds, over fresh queues and a fresh store.
func setupProcess(tb testing.TB, cfg Config, register func(*Mux)) *procEnv {
	tb.Helper()
	return setupProcessStatuses(tb, cfg, register, nil)
}

// setupProcessStatuses is setupProcess with the runner reading and
// recording statuses through wrap(the store) when wrap is not nil.
func setupProcessStatuses(tb testing.TB, cfg Config, register func(*Mux), wrap func(*task.Store) Statuses) *procEnv {
	tb.Helper()
	ctx := context.Background()
	n := procSeq.Add(1)
	tasksQ, eventsQ := fmt.Sprintf("runner-test-tasks-%d", n), fmt.Sprintf("runner-test-events-%d", n)
	e := &procEnv{eventsQ: eventsQ, tasksQ: tasksQ}
	var err error
	if e.tasks, err = task.OpenTopic(ctx, "memq://"+tasksQ); err != nil {
		tb.Fatal(err)
	}
	if e.sub, err = task.OpenSubscription(ctx, "memq://"+tasksQ+"?visibility=1m"); err != nil {
		tb.Fatal(err)
	}
	events, err := task.OpenTopic(ctx, "memq://"+eventsQ)
	if err != nil {
		tb.Fatal(err)
	}
	if e.events, err = task.OpenSubscription(ctx, "memq://"+eventsQ); err != nil {
		tb.Fatal(err)
	}
	coll, err := memstore.OpenCollection("id", nil)
	if err != nil {
		tb.Fatal(err)
	}
	e.store, e.coll = task.NewStore(coll), coll
	bucket := memblob.OpenBucket(nil)
	mux := NewMux()
	if register != nil {
		register(mux)
	}
	if cfg.Name == "" {
		cfg.Name = "test-runner"
	}
	var statuses Statuses = e.store
	if wrap != nil {
		statuses = wrap(e.store)
	}
	e.r = New(mux, events, task.NewArchive(bucket), statuses, nil, cfg)
	tb.Cleanup(func() {
		_ = e.sub.Shutdown(ctx)
		_ = e.events.Shutdown(ctx)
		_ = e.tasks.Shutdown(ctx)
		_ = events.Shutdown(ctx)
		_ = e.store.Close()
		_ = bucket.Close()
		memq.Delete(tasksQ)
		memq.Delete(eventsQ)
	})
	return e
}

// submit creates the queued documents of n tasks of function fn with args
// and sends their messages, as dispatch does. It returns their IDs.
func (e *procEnv) submit(tb testing.TB, fn string, args json.RawMessage, n int) []string {
	tb.Helper()
	ctx := context.Background()
	now := time.Now().UTC()
	ids := make([]string, n)
	sts := make([]*task.Status, n)
	bodies := make([][]byte, n)
	for i := range n {
		ids[i] = task.NewID(now)
		sts[i] = &task.Status{ID: ids[i], Function: fn, Queue: "default", MaxAttempts: 3, CreatedAt: now}
		b, err := task.EncodeMessage(&task.Message{
			ID: ids[i], Function: fn, Queue: "default", Args: args,
			TimeoutMS: time.Minute.Milliseconds(), MaxAttempts: 3, CreatedAt: now,
		})
		if err != nil {
			tb.Fatal(err)
		}
		bodies[i] = b
	}
	if err := e.store.CreateMany(ctx, sts); err != nil {
		tb.Fatal(err)
	}
	if failed := e.tasks.SendAll(ctx, bodies, nil); len(failed) > 0 {
		tb.Fatal(failed)
	}
	return ids
}

// receive takes n task deliveries.
func (e *procEnv) receive(tb testing.TB, n int) []*task.Delivery {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ds := make([]*task.Delivery, 0, n)
	for len(ds) < n {
		got, err := e.sub.ReceiveBatch(ctx, n-len(ds))
		if err != nil {
			tb.Fatalf("receive %d task deliveries, got %d: %v", n, len(ds), err)
		}
		ds = append(ds, got...)
	}
	return ds
}

// drainEvents takes and acks every event published so far, in order.
func (e *procEnv) drainEvents(tb testing.TB) []*task.Event {
	tb.Helper()
	var evs []*task.Event
	for memq.Stats(e.eventsQ).Ready > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		ds, err := e.events.ReceiveBatch(ctx, 1000)
		cancel()
		if err != nil {
			tb.Fatal(err)
		}
		for _, d := range ds {
			ev, _, err := task.DecodeEvent(d.Body)
			if err != nil {
				tb.Fatal(err)
			}
			if ev != nil {
				evs = append(evs, ev)
			}
			d.Ack()
		}
	}
	return evs
}

// phases lists the phases of evs of task id, in order.
func phases(evs []*task.Event, id string) []task.Phase {
	var ps []task.Phase
	for _, ev := range evs {
		if ev.TaskID == id {
			ps = append(ps, ev.Phase)
		}
	}
	return ps
}

// startedEvents waits until the events queue holds at least n events,
// as a function that runs until its started event is out does; it fails
// the task after a minute (far beyond any StartedDelay here).
func (e *procEnv) startedEvents(ctx context.Context, n int) error {
	deadline := time.Now().Add(time.Minute)
	for memq.Stats(e.eventsQ).Ready < n {
		if time.Now().After(deadline) {
			return fmt.Errorf("%d events published while running, want %d", memq.Stats(e.eventsQ).Ready, n)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

// TestStartedEvent: a task that ends before StartedDelay publishes only
// its outcome; one that runs on publishes exactly one started event, while
// it runs and before its outcome; with StartedDelay negative every task
// publishes one at once, before its outcome. No case depends on how fast
// the machine is: the quick no-op has a second (a minute, negative
// delay aside) to finish before its started event is due, and the slow
// function runs until every started event is out (it never returns
// without, and a started event published only after it returned would
// never come).
func TestStartedEvent(t *testing.T) {
	cases := []struct {
		name        string
		delay       time.Duration
		fn          string
		wantStarted bool
	}{
		{"quick task", time.Minute, "quick", false},
		{"slow task", 20 * time.Millisecond, "slow", true},
		{"quick task, negative delay", -1, "quick", true},
		{"slow task, negative delay", -1, "slow", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			const n = 4 // run at once
			var e *procEnv
			e = setupProcess(t, Config{StartedDelay: tc.delay, Concurrency: n}, func(m *Mux) {
				m.HandleFunc("quick", func(context.Context, *task.Task) (task.Result, error) { return nil, nil })
				m.HandleFunc("slow", func(ctx context.Context, _ *task.Task) (task.Result, error) {
					if err := e.startedEvents(ctx, n); err != nil {
						return nil, err
					}
					return task.Result(`"done"`), nil
				})
			})
			ids := e.submit(t, tc.fn, nil, n)
			ds := e.receive(t, n)
			outcomes := make(chan Outcome, n)
			for _, d := range ds {
				go func() { outcomes <- e.r.Process(context.Background(), d) }()
			}
			for range n {
				if o := <-outcomes; o != Acked {
					t.Fatalf("outcome %d, want Acked", o)
				}
			}
			evs := e.drainEvents(t)
			want := []task.Phase{task.PhaseSucceeded}
			if tc.wantStarted {
				want = []task.Phase{task.PhaseStarted, task.PhaseSucceeded}
			}
			for _, id := range ids {
				if got := phases(evs, id); !slices.Equal(got, want) {
					t.Errorf("task %s published %v, want %v", id, got, want)
				}
			}
			for _, ev := range evs {
				if ev.Phase == task.PhaseStarted && (ev.StartedAt.IsZero() || !ev.At.Equal(ev.StartedAt)) {
					t.Errorf("started event of %s: at %v, started_at %v; want both the start", ev.TaskID, ev.At, ev.StartedAt)
				}
			}
		})
	}
}

// TestStartedEventTimerRearms: the runner-wide started timer keeps serving
// after idle spells and across tasks that start while it is armed. The
// slow task runs until its started event is out; the quick one starts
// while the timer is armed for the slow one and ends (a no-op) well
// within its own second.
func TestStartedEventTimerRearms(t *testing.T) {
	const delay = time.Second
	var e *procEnv
	running := make(chan struct{}, 1)
	e = setupProcess(t, Config{StartedDelay: delay}, func(m *Mux) {
		m.HandleFunc("slow", func(ctx context.Context, t *task.Task) (task.Result, error) {
			running <- struct{}{}
			// The quick task's outcome, then this task's started event.
			return nil, e.startedEvents(ctx, 2)
		})
		m.HandleFunc("quick", func(context.Context, *task.Task) (task.Result, error) { return nil, nil })
	})
	for round := range 3 {
		slow := e.submit(t, "slow", nil, 1)[0]
		quick := e.submit(t, "quick", nil, 1)[0]
		ds := e.receive(t, 2)
		if m, err := task.DecodeMessage(ds[0].Body); err != nil || m.ID != slow {
			ds[0], ds[1] = ds[1], ds[0]
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			e.r.Process(context.Background(), ds[0])
		}()
		<-running // the timer is armed for the slow task now
		e.r.Process(context.Background(), ds[1])
		<-done
		evs := e.drainEvents(t)
		if got, want := phases(evs, slow), []task.Phase{task.PhaseStarted, task.PhaseSucceeded}; !slices.Equal(got, want) {
			t.Errorf("round %d: slow task published %v, want %v", round, got, want)
		}
		if got, want := phases(evs, quick), []task.Phase{task.PhaseSucceeded}; !slices.Equal(got, want) {
			t.Errorf("round %d: quick task published %v, want %v", round, got, want)
		}
		time.Sleep(100 * time.Millisecond) // idle: the timer disarms
	}
}

// TestProcessDropsTerminal: a delivery of a task whose status is terminal
// (here cancelled before it ran) is acked without running or publishing.
func TestProcessDropsTerminal(t *testing.T) {
	var ran atomic.Int64
	// No started events however slow the machine: only outcomes are
	// looked at here.
	e := setupProcess(t, Config{StartedDelay: time.Hour}, func(m *Mux) {
		m.HandleFunc("count", func(context.Context, *task.Task) (task.Result, error) {
			ran.Add(1)
			return nil, nil
		})
	})
	ids := e.submit(t, "count", nil, 3)
	if _, err := e.store.Cancel(context.Background(), ids[1], "test"); err != nil {
		t.Fatal(err)
	}
	for _, d := range e.receive(t, 3) {
		if o := e.r.Process(context.Background(), d); o != Acked {
			t.Fatalf("outcome %d, want Acked", o)
		}
	}
	if n := ran.Load(); n != 2 {
		t.Errorf("function ran %d times, want 2", n)
	}
	evs := e.drainEvents(t)
	if got := phases(evs, ids[1]); len(got) != 0 {
		t.Errorf("cancelled task published %v, want nothing", got)
	}
	for _, id := range []string{ids[0], ids[2]} {
		if got, want := phases(evs, id), []task.Phase{task.PhaseSucceeded}; !slices.Equal(got, want) {
			t.Errorf("task %s published %v, want %v", id, got, want)
		}
	}
}
