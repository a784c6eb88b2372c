package runner

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/droverhq/drover/pkg/memq"
	"github.com/droverhq/drover/pkg/task"
)

// TestPickerShares: with every queue full, the first pick of each
// take follows the weights exactly over each round of sum-of-weights
// picks, so the taken shares are the weights' and none starves.
func TestPickerShares(t *testing.T) {
	p := newPicker([]Queue{{Name: "critical", Weight: 6}, {Name: "default", Weight: 3}, {Name: "low", Weight: 1}}, false)
	counts := make([]int, 3)
	var buf []int
	for round := range 100 {
		before := append([]int(nil), counts...)
		for range 10 {
			buf = p.order(buf)
			counts[buf[0]]++
			if len(buf) != 3 {
				t.Fatalf("order %v lists not every queue", buf)
			}
		}
		for i, w := range []int{6, 3, 1} {
			if counts[i]-before[i] != w {
				t.Fatalf("round %d: queue %d first %d times of 10, want %d", round, i, counts[i]-before[i], w)
			}
		}
	}
	strict := newPicker([]Queue{{Name: "a", Weight: 1}, {Name: "b", Weight: 9}}, true)
	if o := strict.order(nil); o[0] != 0 || o[1] != 1 {
		t.Errorf("strict order %v, want the listed order", o)
	}
}

// setupQueues sends n tasks of fn on each of the named memq queues and
// returns the runner's queues over them.
func setupQueues(t *testing.T, e *procEnv, names []string, weights []int, n int) []Queue {
	return setupQueuesTB(t, e, names, weights, n)
}

func setupQueuesTB(t testing.TB, e *procEnv, names []string, weights []int, n int) []Queue {
	t.Helper()
	ctx := context.Background()
	var qs []Queue
	for i, name := range names {
		q := fmt.Sprintf("%s-%s", e.tasksQ, name)
		top, err := task.OpenTopic(ctx, "memq://"+q)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now().UTC()
		bodies := make([][]byte, n)
		sts := make([]*task.Status, n)
		for k := range n {
			id := task.NewID(now)
			sts[k] = &task.Status{ID: id, Function: "count", Queue: name, MaxAttempts: 3, CreatedAt: now}
			bodies[k], _ = task.EncodeMessage(&task.Message{ID: id, Function: "count", Queue: name, Args: []byte(`"` + name + `"`),
				TimeoutMS: 60000, MaxAttempts: 3, CreatedAt: now})
		}
		if err := e.store.CreateMany(ctx, sts); err != nil {
			t.Fatal(err)
		}
		if failed := top.SendAll(ctx, bodies, nil); len(failed) > 0 {
			t.Fatal(failed)
		}
		_ = top.Shutdown(ctx)
		t.Cleanup(func() { memq.Delete(q) })
		qs = append(qs, Queue{Name: name, Weight: weights[i], Open: task.URLOpener("memq://" + q + "?visibility=1m")})
	}
	return qs
}

// TestRunQueuesWeighted: a runner serving three full queues with
// weights 6:3:1 takes from each in proportion (wide tolerance: the
// order is exact per worker round, the run is cut off at any point), and
// from the lowest too.
func TestRunQueuesWeighted(t *testing.T) {
	taken := make(chan string, 4000)
	e := setupProcess(t, Config{Concurrency: 4}, func(m *Mux) {
		m.HandleFunc("count", func(_ context.Context, tk *task.Task) (task.Result, error) {
			taken <- string(tk.Args)
			return nil, nil
		})
	})
	qs := setupQueues(t, e, []string{"critical", "default", "low"}, []int{6, 3, 1}, 1000)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.r.RunQueues(ctx, qs) }()
	counts := map[string]int{}
	deadline := time.After(5 * time.Minute)
	for n := 0; n < 1000; n++ {
		select {
		case q := <-taken:
			counts[q]++
		case <-deadline:
			t.Fatalf("took %d tasks in 5 minutes: %v", n, counts)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for q, w := range map[string]float64{`"critical"`: 0.6, `"default"`: 0.3, `"low"`: 0.1} {
		share := float64(counts[q]) / 1000
		if math.Abs(share-w) > 0.05 {
			t.Errorf("queue %s: share %.3f of the first 1000 tasks, want %.1f ± 0.05 (%v)", q, share, w, counts)
		}
	}
}

// TestHandBack: a runner without a task's function or traits hands it
// back without starting it: no attempt spent, no event, and it comes
// back for a runner that can run it.
func TestHandBack(t *testing.T) {
	e := setupProcess(t, Config{Traits: task.Traits{"python": "3.11"}}, func(m *Mux) {
		m.HandleFunc("echo", func(_ context.Context, tk *task.Task) (task.Result, error) { return task.Result(tk.Args), nil })
	})
	ctx := context.Background()
	now := time.Now().UTC()
	specs := []task.Message{
		{Function: "nope"},
		{Function: "echo", Requires: task.Requires{"python": ">=3.12"}},
		{Function: "echo", Requires: task.Requires{"gpu": ""}},
	}
	for i := range specs {
		m := &specs[i]
		m.ID, m.Queue, m.TimeoutMS, m.MaxAttempts, m.CreatedAt = task.NewID(now), "default", 60000, 1, now
		if err := e.store.CreateMany(ctx, []*task.Status{{ID: m.ID, Function: m.Function, Queue: "default", MaxAttempts: 1, CreatedAt: now}}); err != nil {
			t.Fatal(err)
		}
		b, _ := task.EncodeMessage(m)
		if err := e.tasks.Send(ctx, b, 0); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range e.receive(t, len(specs)) {
		if out := e.r.Process(ctx, d); out != Released {
			t.Errorf("outcome %v, want Released", out)
		}
	}
	if evs := e.drainEvents(t); len(evs) != 0 {
		t.Errorf("events published for tasks handed back: %+v", evs)
	}
	for _, m := range specs {
		st, err := e.store.Get(ctx, m.ID)
		if err != nil {
			t.Fatal(err)
		}
		if st.Attempt != 0 || st.State != task.Queued {
			t.Errorf("%s: state %s attempt %d, want queued with no attempt spent", m.Function, st.State, st.Attempt)
		}
	}
	// A capable runner takes the traits' one once it is visible again.
	ok := setupProcess(t, Config{Traits: task.Traits{"python": "3.12.1"}}, func(m *Mux) {
		m.HandleFunc("echo", func(_ context.Context, tk *task.Task) (task.Result, error) { return task.Result(`1`), nil })
	})
	b, _ := task.EncodeMessage(&specs[1])
	if err := ok.tasks.Send(ctx, b, 0); err != nil {
		t.Fatal(err)
	}
	if err := ok.store.CreateMany(ctx, []*task.Status{{ID: specs[1].ID, Function: "echo", Queue: "default", MaxAttempts: 1, CreatedAt: now}}); err != nil {
		t.Fatal(err)
	}
	if out := ok.r.Process(ctx, ok.receive(t, 1)[0]); out != Acked {
		t.Fatalf("capable runner: outcome %v", out)
	}
	evs := ok.drainEvents(t)
	if len(evs) == 0 || evs[len(evs)-1].Phase != task.PhaseSucceeded || evs[len(evs)-1].Matched["python"] != "3.12.1" {
		t.Errorf("capable runner's events %+v: want succeeded, matched python=3.12.1", evs)
	}
}

// BenchmarkWeightedShares measures the shares a runner takes from three
// full queues weighted critical:6, default:3, low:1 (docs/routing.md):
//
//	go test -run '^$' -bench WeightedShares -benchtime 3000x ./runner/
//
// It reports each queue's share of the first b.N tasks taken, in
// percent, beside the weight's.
func BenchmarkWeightedShares(b *testing.B) {
	for _, mode := range []struct {
		name   string
		strict bool
	}{{"weighted", false}, {"strict", true}} {
		b.Run(mode.name, func(b *testing.B) {
			taken := make(chan string, b.N)
			e := setupProcess(b, Config{Concurrency: 8, Strict: mode.strict}, func(m *Mux) {
				m.HandleFunc("count", func(_ context.Context, tk *task.Task) (task.Result, error) {
					select {
					case taken <- string(tk.Args):
					default:
					}
					return nil, nil
				})
			})
			qs := setupQueuesTB(b, e, []string{"critical", "default", "low"}, []int{6, 3, 1}, b.N)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			b.ResetTimer()
			go func() { done <- e.r.RunQueues(ctx, qs) }()
			counts := map[string]int{}
			for range b.N {
				counts[<-taken]++
			}
			b.StopTimer()
			cancel()
			<-done
			for _, q := range []string{"critical", "default", "low"} {
				b.ReportMetric(100*float64(counts[`"`+q+`"`])/float64(b.N), q+"_%")
			}
		})
	}
}
