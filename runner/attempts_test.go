package runner

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/droverhq/drover/pkg/memq"
	"github.com/droverhq/drover/pkg/task"
)

// TestAttemptsCountExecutions: deliveries that never start the function
// (a message that came back five times from a receiver that did nothing
// with it, as from an expired prefetch buffer) consume no attempt: the
// function sees attempt 1, then 2, and the task succeeds although the
// queue counts seven deliveries, more than max_attempts (finding 2: it
// used to fail with "gave up: delivered 6 times").
func TestAttemptsCountExecutions(t *testing.T) {
	var (
		mu   sync.Mutex
		seen []int
	)
	e := setupProcess(t, Config{BackoffBase: 10 * time.Millisecond, BackoffMax: 20 * time.Millisecond}, func(m *Mux) {
		m.HandleFunc("flaky", func(_ context.Context, tk *task.Task) (task.Result, error) {
			mu.Lock()
			seen = append(seen, tk.Attempt)
			mu.Unlock()
			if tk.Attempt == 1 {
				return nil, errors.New("first attempt fails")
			}
			return task.Result(`"ok"`), nil
		})
	})
	id := e.submit(t, "flaky", nil, 1)[0]
	ctx := context.Background()
	for range 5 {
		d := e.receive(t, 1)[0]
		if err := d.Lease.SetVisibility(ctx, 0); err != nil {
			t.Fatal(err)
		}
		d.Nack()
	}
	d := e.receive(t, 1)[0]
	if n := d.Attempt(); n != 6 {
		t.Fatalf("receive count %d, want 6: the test proves nothing", n)
	}
	if o := e.r.Process(ctx, d); o != Retry {
		t.Fatalf("first execution: outcome %d, want Retry", o)
	}
	d = e.receive(t, 1)[0]
	if o := e.r.Process(ctx, d); o != Acked {
		t.Fatalf("second execution: outcome %d, want Acked", o)
	}
	if !slices.Equal(seen, []int{1, 2}) {
		t.Fatalf("function saw attempts %v, want [1 2]", seen)
	}
	var outcome *task.Event
	for _, ev := range e.drainEvents(t) {
		if ev.TaskID == id && ev.Phase.State().Terminal() {
			outcome = ev
		}
	}
	if outcome == nil || outcome.Phase != task.PhaseSucceeded || outcome.Attempt != 2 {
		t.Fatalf("outcome %+v, want succeeded at attempt 2", outcome)
	}
	st, err := e.store.Get(ctx, id)
	if err != nil || st.Attempt != 2 {
		t.Fatalf("status %+v %v, want attempt 2", st, err)
	}
}

// TestNoTimeToStart: a delivery whose context (a Lambda invocation's) has
// too little time left is handed back unstarted, hidden for a backoff
// (never at visibility 0, a hot loop), and consumes no attempt; one cut
// short by that deadline while running is handed back with a backoff too
// (finding 7).
func TestNoTimeToStart(t *testing.T) {
	var ran sync.WaitGroup
	runs := 0
	e := setupProcess(t, Config{BackoffBase: time.Hour, BackoffMax: time.Hour}, func(m *Mux) {
		m.HandleFunc("wait", func(ctx context.Context, _ *task.Task) (task.Result, error) {
			runs++
			<-ctx.Done()
			ran.Done()
			return nil, ctx.Err()
		})
	})
	id := e.submit(t, "wait", nil, 1)[0]
	ctx, cancel := context.WithTimeout(context.Background(), minStartTime/5)
	defer cancel()
	if o := e.r.Process(ctx, e.receive(t, 1)[0]); o != Released {
		t.Fatalf("outcome %d, want Released", o)
	}
	if runs != 0 {
		t.Fatal("the function started with no time left")
	}
	if st := memq.Stats(e.tasksQ); st.Ready != 0 || st.InFlight != 1 {
		t.Fatalf("queue %+v: the message should be hidden for its backoff", st)
	}
	if st, err := e.store.Get(context.Background(), id); err != nil || st.Attempt != 0 {
		t.Fatalf("status %+v %v: an unstarted delivery consumed an attempt", st, err)
	}

	// Cut short while running.
	id2 := e.submit(t, "wait", nil, 1)[0]
	ran.Add(1)
	ctx2, cancel2 := context.WithTimeout(context.Background(), 2*minStartTime)
	defer cancel2()
	d := e.receive(t, 1)[0]
	if o := e.r.Process(ctx2, d); o != Released {
		t.Fatalf("outcome %d, want Released", o)
	}
	ran.Wait()
	if st := memq.Stats(e.tasksQ); st.Ready != 0 {
		t.Fatalf("queue %+v: a task cut short was released at visibility 0", st)
	}
	for _, ev := range e.drainEvents(t) {
		if ev.TaskID == id2 && ev.Phase.State().Terminal() {
			t.Fatalf("a task cut short by the delivery's deadline ended: %+v", ev)
		}
		if strings.Contains(ev.Error, "gave up") {
			t.Fatalf("gave up: %+v", ev)
		}
	}
}

// TestLambdaMargin: the margin kept back scales with the invocation's
// time, so that a 3 s function (Lambda's default) leaves its tasks time
// to start (finding 7: a fixed 3 s margin left none).
func TestLambdaMargin(t *testing.T) {
	for _, c := range []struct{ left, want time.Duration }{
		{time.Second, 200 * time.Millisecond},
		{3 * time.Second, 300 * time.Millisecond},
		{15 * time.Minute, 3 * time.Second},
	} {
		got := lambdaMargin(c.left)
		if got != c.want || c.left-got < minStartTime {
			t.Errorf("margin of %s: %s, want %s leaving at least %s", c.left, got, c.want, minStartTime)
		}
	}
}

// TestGiveUpWaitsForLastAttempt: a delivery of a task whose attempts are
// all started without an outcome gives up only once the last attempt
// cannot be running any more (its start plus the task's timeout plus
// giveUpGrace). Before that the delivery is a duplicate of an attempt
// still running elsewhere (moto and SQS deliver a message to concurrent
// receivers): it is handed back, and nothing is reported, so that the
// attempt's own outcome stands (CI: a "fail" task ended "gave up" instead
// of its function's error).
func TestGiveUpWaitsForLastAttempt(t *testing.T) {
	e := setupProcess(t, Config{}, func(m *Mux) {
		m.HandleFunc("never", func(context.Context, *task.Task) (task.Result, error) {
			t.Error("the function ran: its attempts were used up")
			return nil, nil
		})
	})
	ctx := context.Background()
	// startAll records the task's three starts as other runners did,
	// the last one at last.
	startAll := func(id string, last time.Time) {
		for i := range 3 {
			ev := &task.Event{TaskID: id, Function: "never", Queue: "default", MaxAttempts: 3, Runner: "elsewhere", At: last.Add(time.Duration(i-2) * time.Second)}
			if res, err := e.store.StartMany(ctx, []*task.Event{ev}); err != nil || res[0].Attempt != i+1 {
				t.Fatalf("start %d: %+v %v", i+1, res, err)
			}
		}
	}

	running := e.submit(t, "never", nil, 1)[0]
	startAll(running, time.Now().UTC())
	if o := e.r.Process(ctx, e.receive(t, 1)[0]); o != Released {
		t.Fatalf("a duplicate of a running last attempt: outcome %d, want Released", o)
	}
	if evs := e.drainEvents(t); len(evs) != 0 {
		t.Fatalf("a duplicate of a running last attempt reported %+v", evs[0])
	}
	if st := memq.Stats(e.tasksQ); st.Ready != 0 || st.InFlight != 1 {
		t.Fatalf("queue %+v: the delivery should be hidden until the attempt's timeout", st)
	}
	if st, err := e.store.Get(ctx, running); err != nil || st.State != task.Running || st.Attempt != 3 {
		t.Fatalf("status %+v %v, want running attempt 3", st, err)
	}

	// Started two hours ago with a timeout of a minute: its runner died.
	dead := e.submit(t, "never", nil, 1)[0]
	startAll(dead, time.Now().UTC().Add(-2*time.Hour))
	if o := e.r.Process(ctx, e.receive(t, 1)[0]); o != Acked {
		t.Fatalf("a task whose last attempt died: outcome %d, want Acked", o)
	}
	evs := e.drainEvents(t)
	if len(evs) != 1 || evs[0].TaskID != dead || evs[0].Phase != task.PhaseFailed || evs[0].Attempt != 3 ||
		!strings.HasPrefix(evs[0].Error, "gave up: 3 of max_attempts 3 attempts started") {
		t.Fatalf("events %+v, want one failed \"gave up\" at attempt 3 of %s", evs, dead)
	}
}

// lostAnswers is a status store whose first lost StartMany calls write
// their starts and then fail, as a call whose answer is lost or comes
// after its deadline does.
type lostAnswers struct {
	*task.Store
	lost atomic.Int64
}

func (s *lostAnswers) StartMany(ctx context.Context, evs []*task.Event) ([]task.Started, error) {
	res, err := s.Store.StartMany(ctx, evs)
	if err == nil && s.lost.Add(-1) >= 0 {
		return nil, errors.New("answer lost after the write")
	}
	return res, err
}

// TestStartWrittenButUnanswered: a start that was recorded although its
// call failed spends no attempt: the runner asks again with the same
// start, the store finds it written, and the function runs as attempt 1
// (an execution that never ran used to take attempt 1, the task ending
// at attempt 2: 8 of 500 tasks at load on moto). Five calls in a row
// fail, over about 6 s of backoff: three tries were not enough on a
// loaded moto.
func TestStartWrittenButUnanswered(t *testing.T) {
	var seen []int
	var store *lostAnswers
	e := setupProcessStatuses(t, Config{}, func(m *Mux) {
		m.HandleFunc("once", func(_ context.Context, tk *task.Task) (task.Result, error) {
			seen = append(seen, tk.Attempt)
			return task.Result(`"ok"`), nil
		})
	}, func(s *task.Store) Statuses {
		store = &lostAnswers{Store: s}
		store.lost.Store(5)
		return store
	})
	id := e.submit(t, "once", nil, 1)[0]
	ctx := context.Background()
	if o := e.r.Process(ctx, e.receive(t, 1)[0]); o != Acked {
		t.Fatalf("outcome %d, want Acked: the start was handed back", o)
	}
	if !slices.Equal(seen, []int{1}) {
		t.Fatalf("function saw attempts %v, want [1]", seen)
	}
	st, err := e.store.Get(ctx, id)
	if err != nil || st.Attempt != 1 {
		t.Fatalf("status %+v %v, want attempt 1", st, err)
	}
}

// downStore is a status store that never records a start.
type downStore struct{ *task.Store }

func (downStore) StartMany(context.Context, []*task.Event) ([]task.Started, error) {
	return nil, errors.New("status store unreachable")
}

// TestStartRetriesEndWithTheCaller: while the store does not answer, the
// round asks again (for up to startRetryFor), but not for a delivery
// whose context has ended (a runner stopping, a Lambda deadline): that
// delivery is handed back, unrun, long before the retries would end.
func TestStartRetriesEndWithTheCaller(t *testing.T) {
	ran := false
	e := setupProcessStatuses(t, Config{}, func(m *Mux) {
		m.HandleFunc("once", func(context.Context, *task.Task) (task.Result, error) {
			ran = true
			return nil, nil
		})
	}, func(s *task.Store) Statuses { return downStore{s} })
	e.submit(t, "once", nil, 1)
	d := e.receive(t, 1)[0]
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(time.Second, cancel)
	start := time.Now()
	if o := e.r.Process(ctx, d); o != Released {
		t.Fatalf("outcome %d, want Released", o)
	}
	if took := time.Since(start); took > startRetryFor/2 {
		t.Errorf("Process returned %s after its context ended, want well before the retries' %s", took, startRetryFor)
	}
	if ran {
		t.Error("the function ran though no start was recorded")
	}
}
