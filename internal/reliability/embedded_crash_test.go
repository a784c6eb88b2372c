package reliability

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/droverhq/drover/client"
	"github.com/droverhq/drover/internal/proctest"
	"github.com/droverhq/drover/pkg/task"
)

// crashSpecs returns n mixed tasks for the built-in functions of drover
// dev and what each must end as: echo, sleep, fail once then succeed,
// and echo delayed 5 s.
func crashSpecs(n int) ([]task.Spec, []expectation) {
	run := time.Now().UnixNano()
	specs := make([]task.Spec, n)
	want := make([]expectation, n)
	for i := range n {
		var s task.Spec
		switch i % 10 {
		case 0, 1, 2, 3, 4:
			s = task.Spec{Function: "echo", Args: fmt.Appendf(nil, `{"i":%d}`, i)}
			want[i] = expectation{state: task.Succeeded, result: s.Args, execs: 1}
		case 5, 6:
			s = task.Spec{Function: "sleep", Args: fmt.Appendf(nil, `{"ms":%d}`, 10+i%200)}
			want[i] = expectation{state: task.Succeeded, execs: 1}
		case 7, 8:
			s = task.Spec{Function: "fail", Args: json.RawMessage(`{"times":1}`)}
			want[i] = expectation{state: task.Succeeded, execs: 2}
		case 9:
			s = task.Spec{Function: "echo", Args: fmt.Appendf(nil, `{"delayed":%d}`, i), Delay: task.Duration(5 * time.Second)}
			want[i] = expectation{state: task.Succeeded, result: s.Args, execs: 1}
		}
		// Spare attempts: a kill may spend deliveries of a task.
		s.MaxAttempts = 20
		s.Timeout = task.Duration(3 * time.Second)
		s.IdempotencyKey = fmt.Sprintf("crash-%d-%d", run, i)
		specs[i] = s
		want[i].giveUpOK = false
	}
	return specs, want
}

// TestEmbeddedCrash: drover dev, durable (the default), killed -9 at
// random moments while tasks are submitted and run, and restarted on the
// same data directory each time. Every task that got a 202 must end as
// expected; none lost or stuck; duplicate executions (attempts beyond
// what the task needs) are reported and bounded by what could be in
// flight at the kills.
func TestEmbeddedCrash(t *testing.T) {
	if droverBin == "" {
		t.Skip("needs the drover binary (not built in -short mode)")
	}
	n, kills := 1000, 5
	if sc.name == "full" {
		n, kills = 10000, 20
	}
	const runners, conc = 2, 8
	dataDir := t.TempDir()
	addr := proctest.FreeAddr(t)
	url := "http://" + addr
	start := func() *proctest.Proc {
		p := proctest.Start(t, "dev", droverBin, []string{"dev"}, []string{
			"DROVER_DATA_DIR=" + dataDir, "DROVER_ADDR=" + addr, "DROVER_VISIBILITY=8s",
			fmt.Sprintf("DROVER_RUNNERS=%d", runners), fmt.Sprintf("DROVER_CONCURRENCY=%d", conc),
			"DROVER_LOG_LEVEL=warn",
		})
		p.WaitReady(t, url+"/readyz", time.Minute)
		return p
	}
	began := time.Now()
	p := start()
	cl := client.New(url)

	specs, want := crashSpecs(n)
	accepted := make([]string, n) // task ids that got a 202, by spec
	var submitted atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; i < n; i += 50 {
			batch := specs[i:min(i+50, n)]
			for {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				sts, err := cl.SubmitBatch(ctx, batch)
				cancel()
				if err == nil {
					for j, st := range sts {
						accepted[i+j] = st.ID
					}
					submitted.Add(int64(len(sts)))
					break
				}
				time.Sleep(50 * time.Millisecond) // killed mid-request: the keys make a resubmission safe
			}
			time.Sleep(time.Duration(rand.IntN(20)) * time.Millisecond)
		}
	})
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 18))
	for k := range kills {
		time.Sleep(time.Duration(300+rng.IntN(2500)) * time.Millisecond)
		p.Kill()
		<-p.Done()
		t.Logf("kill %d at %d submitted", k+1, submitted.Load())
		p = start()
	}
	wg.Wait()
	defer p.Stop()

	// Wait for every accepted task to end.
	deadline := time.Now().Add(5 * time.Minute)
	final := make([]*task.Status, n)
	for {
		open := 0
		for i, id := range accepted {
			if final[i] != nil {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			st, err := cl.Get(ctx, id)
			cancel()
			if err == nil && st.State.Terminal() {
				final[i] = st
				continue
			}
			open++
		}
		if open == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	terminal, wrong, dups := 0, 0, 0
	var notes []string
	for i, st := range final {
		if st == nil {
			if len(notes) < 5 {
				notes = append(notes, fmt.Sprintf("%s (%s) not terminal", accepted[i], specs[i].Function))
			}
			continue
		}
		terminal++
		w := want[i]
		ok := st.State == w.state
		if ok && w.result != nil {
			var got, exp any
			_ = json.Unmarshal(st.Result, &got)
			_ = json.Unmarshal(w.result, &exp)
			ok = fmt.Sprint(got) == fmt.Sprint(exp)
		}
		if ok && specs[i].Delay > 0 && !st.StartedAt.IsZero() && st.StartedAt.Sub(st.CreatedAt) < 4*time.Second {
			ok = false // a delayed task ran before its due time
		}
		if !ok {
			wrong++
			if len(notes) < 5 {
				notes = append(notes, fmt.Sprintf("%s (%s) ended %s %q", st.ID, specs[i].Function, st.State, st.Error))
			}
		}
		if extra := st.Attempt - w.execs; extra > 0 {
			dups += extra
		}
	}
	// At a kill, at most runners×concurrency tasks run, and each of the
	// receive batches the runners hold is as big; each may run again.
	bound := kills * runners * conc * 2
	note := fmt.Sprintf("drover dev kill -9 ×%d on one data dir; duplicates bound %d", kills, bound)
	if len(notes) > 0 {
		note += "; " + fmt.Sprint(notes)
	}
	report(t, row{
		scenario: "9 embedded crash (durable)", backend: "embedded", submitted: n, terminal: terminal,
		duplicates: dups, wrong: wrong, kills: kills, took: time.Since(began),
		pass: terminal == n && wrong == 0 && dups <= bound, note: note,
	})
}
