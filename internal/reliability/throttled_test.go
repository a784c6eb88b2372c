package reliability

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/droverhq/drover/internal/awstest"
	"github.com/droverhq/drover/internal/proctest"
	"github.com/droverhq/drover/pkg/task"
)

// throttledScale sizes scenario 10.
type throttledScale struct {
	tasks    int
	hogs     int // busy processes contending for the CPU
	chaos    time.Duration
	deadline time.Duration
	stall    float64
}

func throttledSize() throttledScale {
	if sc.name == "full" {
		return throttledScale{tasks: 1000, hogs: runtime.NumCPU(), chaos: 4 * time.Minute, deadline: 30 * time.Minute, stall: 0.005}
	}
	// No CPU hog in the small variant: inside make test, other packages'
	// tests run beside it, and the hog would be theirs too.
	return throttledScale{tasks: 120, hogs: 0, chaos: 30 * time.Second, deadline: 6 * time.Minute, stall: 0.01}
}

// hogCPU starts n processes that spin, so that the parts compete for the
// CPU; they are stopped (and only they) when t ends.
func hogCPU(t *testing.T, n int) {
	for i := range n {
		p := proctest.Start(t, fmt.Sprintf("cpu-hog-%d", i), "sh", []string{"-c", "while :; do :; done"}, nil)
		t.Cleanup(p.Kill)
	}
}

// throttledSpecs are the acceptance mix: echo, sleep, and
// fail-then-succeed with max_attempts 2.
func throttledSpecs(n int) ([]task.Spec, []expectation, []string) {
	run := time.Now().UnixNano()
	specs := make([]task.Spec, n)
	want := make([]expectation, n)
	kinds := make([]string, n)
	for i := range n {
		switch i % 10 {
		case 0, 1, 2, 3:
			args := fmt.Appendf(nil, `{"i":%d}`, i)
			specs[i], kinds[i] = task.Spec{Function: FnEcho, Args: args, MaxAttempts: 3}, "echo"
			want[i] = expectation{state: task.Succeeded, result: args, execs: 1}
		case 4, 5, 6:
			args := fmt.Appendf(nil, `{"ms":%d,"i":%d}`, 5+i%50, i)
			specs[i], kinds[i] = task.Spec{Function: FnSleep, Args: args, MaxAttempts: 3}, "sleep"
			want[i] = expectation{state: task.Succeeded, result: args, execs: 1}
		default:
			args := fmt.Appendf(nil, `{"until":1,"message":"transient %d"}`, i)
			specs[i], kinds[i] = task.Spec{Function: FnFail, Args: args, MaxAttempts: 2}, "fail-then-succeed (max_attempts 2)"
			want[i] = expectation{state: task.Succeeded, result: args, execs: 2}
		}
		specs[i].IdempotencyKey = fmt.Sprintf("throttled-%d-%d", run, i)
		specs[i].Timeout = task.Duration(30 * time.Second) // as in soakSpecs
	}
	return specs, want, kinds
}

// TestSoakThrottled is scenario 10 (moto): the soak's mix through 4
// runners killed (-9) at random, with every AWS call of every part going
// through a proxy that delays it 50-300 ms and stalls some past the
// visibility timeout, and the CPU contended. Nothing may be lost or end
// wrong; attempts count executions (no task fails on deliveries that ran
// nothing); every duplicate execution is traced to a killed runner or a
// lease the proxy let lapse, and those of kills are at most the kills.
// It prints deliveries against executions.
func TestSoakThrottled(t *testing.T) {
	if moto == nil {
		t.Skip(skipAWSNote)
	}
	t.Parallel()
	z := throttledSize()
	start := time.Now()
	vis := 5 * time.Second
	thr := &awstest.ThrottleConfig{StallRate: z.stall, Stall: vis + 2*time.Second}
	e := motoBackend{}.newEnv(t, envOpts{Visibility: vis, Throttle: thr}).(*motoEnv)
	hogCPU(t, z.hogs)
	e.StartCollector("collect")
	var mu sync.Mutex
	runners := make([]proc, 4)
	names := make([]string, 4)
	killed := map[string]bool{}
	for i := range runners {
		names[i] = fmt.Sprintf("t%d-0", i)
		runners[i] = e.StartRunner(names[i], runnerOpts{Concurrency: 1})
	}
	specs, want, kinds := throttledSpecs(z.tasks)
	stop := make(chan struct{})
	var kills atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 10))
		for gen := 1; ; gen++ {
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(3000+rng.IntN(3000)) * time.Millisecond):
			}
			if time.Since(start) > z.chaos {
				return
			}
			mu.Lock()
			i := rng.IntN(len(runners))
			killed[names[i]] = true
			runners[i].Kill()
			kills.Add(1)
			names[i] = fmt.Sprintf("t%d-%d", i, gen)
			runners[i] = e.StartRunner(names[i], runnerOpts{Concurrency: 1})
			mu.Unlock()
		}
	})
	ids := submitAll(t, e.Client(), specs)
	docs := waitTerminal(t, e.Store(), ids, z.deadline)
	dumpIfStuck(t, e, ids, docs)
	close(stop)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()

	execs, runs := e.Executions(t), e.ExecutionRunners(t)
	deliveries, lapsed := e.throttle.Deliveries(), e.throttle.Lapsed()
	nKills := int(kills.Load())
	terminal, wrong, dups, dupsOfKills, unrecorded, gaveUp := 0, 0, 0, 0, 0, 0
	type tally struct{ tasks, deliveries, executions, attempts, dups int }
	byKind := map[string]*tally{}
	shown := 0
	for i, id := range ids {
		k := byKind[kinds[i]]
		if k == nil {
			k = &tally{}
			byKind[kinds[i]] = k
		}
		k.tasks++
		k.deliveries += deliveries[id]
		k.executions += execs[id]
		d, w := docs[id], want[i]
		if d == nil || !d.State.Terminal() {
			continue
		}
		terminal++
		k.attempts += d.Attempt
		kill := false
		for _, r := range runs[id] {
			kill = kill || killed[r]
		}
		bad := ""
		switch {
		case d.State == task.Failed && strings.Contains(d.Error, "gave up") && kill && d.Attempt == 2:
			// Both attempts started, one of them on a runner killed
			// under it: by the contract the task has used its attempts.
			// A lease the proxy let lapse is no excuse: the attempt
			// still runs, and its duplicate delivery waits for it.
			gaveUp++
		case d.State != w.state:
			bad = fmt.Sprintf("state %s, want %s (attempt %d, error %q)", d.State, w.state, d.Attempt, d.Error)
		case !jsonEqual(d.Result, w.result):
			bad = fmt.Sprintf("result %s, want %s", d.Result, w.result)
		}
		if bad != "" {
			wrong++
			if shown++; shown <= 10 {
				t.Errorf("task %d %s (%s): %s; %d deliveries, executions on %v", i, id, d.Function, bad, deliveries[id], runs[id])
			}
		}
		// An attempt the status counts that recorded no execution can
		// only be a start interrupted by a kill before the function
		// recorded itself.
		if n := d.Attempt - execs[id]; n > 0 {
			unrecorded += n
		}
		if n := execs[id] - w.execs; n > 0 && d.State == w.state {
			dups += n
			k.dups += n
			if !lapsed[id] {
				dupsOfKills += n
			}
		}
	}
	unexplained := traceDuplicates(t, ids, want, runs, killed, lapsed)
	var tb strings.Builder
	fmt.Fprintf(&tb, "\nScenario 10, deliveries vs executions (%d tasks, %d runner kills, %d of %d calls stalled %s, %d CPU hogs)\n\n", len(ids), nKills, e.throttle.Stalls(), e.throttle.Calls(), thr.Stall, z.hogs)
	fmt.Fprintf(&tb, "| tasks | count | deliveries | executions | attempts (status) | duplicate executions |\n|---|---:|---:|---:|---:|---:|\n")
	var all tally
	for _, name := range []string{"echo", "sleep", "fail-then-succeed (max_attempts 2)"} {
		k := byKind[name]
		if k == nil {
			continue
		}
		fmt.Fprintf(&tb, "| %s | %d | %d | %d | %d | %d |\n", name, k.tasks, k.deliveries, k.executions, k.attempts, k.dups)
		all.tasks, all.deliveries, all.executions, all.attempts, all.dups = all.tasks+k.tasks, all.deliveries+k.deliveries, all.executions+k.executions, all.attempts+k.attempts, all.dups+k.dups
	}
	fmt.Fprintf(&tb, "| all | %d | %d | %d | %d | %d |\n", all.tasks, all.deliveries, all.executions, all.attempts, all.dups)
	t.Log(tb.String())
	fmt.Print(tb.String())
	if unrecorded > nKills {
		t.Errorf("%d attempts counted without a recorded execution, more than the %d kills that could have interrupted a start", unrecorded, nKills)
	}
	report(t, row{
		scenario: "10 soak, throttled emulator, CPU contended", backend: "moto", submitted: len(ids), terminal: terminal,
		duplicates: dups, wrong: wrong, kills: nKills, took: time.Since(start),
		pass: terminal == len(ids) && wrong == 0 && unexplained == 0 && dupsOfKills <= nKills && unrecorded <= nKills,
		note: fmt.Sprintf("50-300 ms per call, %d of %d calls stalled %s (visibility %s), %d CPU hogs; %d deliveries for %d executions (%d attempts in statuses); duplicates not traced: %d; duplicates of kills %d ≤ %d kills; %d gave up after a kill took one of their 2 attempts",
			e.throttle.Stalls(), e.throttle.Calls(), thr.Stall, vis, z.hogs, all.deliveries, all.executions, all.attempts, unexplained, dupsOfKills, nKills, gaveUp),
	})
}
