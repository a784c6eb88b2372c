package reliability

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/droverhq/drover/pkg/task"
)

// expectation is what the model says a task must end as.
type expectation struct {
	state  task.State
	result []byte // nil: not checked
	errSub string // for failed tasks
	// giveUpOK accepts "gave up" as the reason: a kill spent one of the
	// task's deliveries, so it failed on the delivery count instead.
	giveUpOK bool
	// execs is how many executions the task needs without faults; more
	// are duplicates.
	execs int
}

// soakSpecs returns n mixed tasks and what each must end as: 60% echo,
// 20% sleep, 10% fail once then succeed, 10% fail for good.
func soakSpecs(n int) ([]task.Spec, []expectation) {
	run := time.Now().UnixNano()
	specs := make([]task.Spec, n)
	want := make([]expectation, n)
	for i := range n {
		switch i % 10 {
		case 0, 1, 2, 3, 4, 5:
			args := fmt.Appendf(nil, `{"i":%d}`, i)
			specs[i] = task.Spec{Function: FnEcho, Args: args, MaxAttempts: 6}
			want[i] = expectation{state: task.Succeeded, result: args, execs: 1}
		case 6, 7:
			args := fmt.Appendf(nil, `{"ms":%d,"i":%d}`, 5+i%40, i)
			specs[i] = task.Spec{Function: FnSleep, Args: args, MaxAttempts: 6}
			want[i] = expectation{state: task.Succeeded, result: args, execs: 1}
		case 8:
			args := fmt.Appendf(nil, `{"until":1,"message":"transient %d"}`, i)
			specs[i] = task.Spec{Function: FnFail, Args: args, MaxAttempts: 6}
			want[i] = expectation{state: task.Succeeded, result: args, execs: 2}
		case 9:
			args := fmt.Appendf(nil, `{"always":true,"message":"doomed %d"}`, i)
			specs[i] = task.Spec{Function: FnFail, Args: args, MaxAttempts: 2}
			want[i] = expectation{state: task.Failed, errSub: fmt.Sprintf("doomed %d", i), giveUpOK: true, execs: 2}
		}
		// Keys make a resubmission after a 503 safe (see submitAll).
		specs[i].IdempotencyKey = fmt.Sprintf("soak-%d-%d", run, i)
		// A task whose last attempt died with a killed runner is given
		// up a minute after that attempt's timeout: 30 s, not the
		// default 5 min, keeps the scenario short (the functions take
		// milliseconds).
		specs[i].Timeout = task.Duration(30 * time.Second)
	}
	return specs, want
}

// judge compares final documents with expectations and executions:
// terminal count, wrong final states, duplicate executions.
func judge(t *testing.T, ids []string, want []expectation, docs map[string]*task.Status, execs map[string]int) (terminal, wrong, dups int) {
	t.Helper()
	shown := 0
	for i, id := range ids {
		d, w := docs[id], want[i]
		if d == nil || !d.State.Terminal() {
			continue
		}
		terminal++
		bad := ""
		switch {
		case d.State != w.state:
			bad = fmt.Sprintf("state %s, want %s (error %q)", d.State, w.state, d.Error)
		case w.result != nil && !jsonEqual(d.Result, w.result):
			bad = fmt.Sprintf("result %s, want %s", d.Result, w.result)
		case w.errSub != "" && !strings.Contains(d.Error, w.errSub) && !(w.giveUpOK && strings.Contains(d.Error, "gave up")):
			bad = fmt.Sprintf("error %q, want it to name %q", d.Error, w.errSub)
		}
		if bad != "" {
			wrong++
			if shown++; shown <= 10 {
				t.Errorf("task %d %s (%s): %s", i, id, d.Function, bad)
			}
		}
		if n := execs[id]; n > w.execs {
			dups += n - w.execs
		}
	}
	return terminal, wrong, dups
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return bytes.Equal(a, b)
	}
	ja, _ := json.Marshal(x)
	jb, _ := json.Marshal(y)
	return bytes.Equal(ja, jb)
}

// TestSoakChaos is scenario 1: mixed tasks through 4 runners (concurrency
// 1 each, so a kill interrupts at most one execution) while runners and
// the collector are killed (-9) and restarted at random.
func TestSoakChaos(t *testing.T) {
	forEach(t, func(t *testing.T, b backend) {
		start := time.Now()
		// 10s, not 2s, on moto: a saturated emulator (both cores busy
		// with other work) delays acks past a short visibility timeout
		// (seen: a delete answered more than 5s after the outcome was
		// published), and the duplicates that come of it are not the
		// kills' (see docs/reliability.md, findings).
		vis := 2 * time.Second
		if b.name() == "moto" {
			vis = 10 * time.Second
		}
		e := b.newEnv(t, envOpts{Visibility: vis})
		var mu sync.Mutex
		gen := 0
		col := e.StartCollector("collect-0")
		runners := make([]proc, 4)
		names := make([]string, 4)
		killedNames := map[string]bool{}
		for i := range runners {
			names[i] = fmt.Sprintf("r%d-0", i)
			runners[i] = e.StartRunner(names[i], runnerOpts{Concurrency: 1})
		}
		specs, want := soakSpecs(sc.soak)
		stop := make(chan struct{})
		var runnerKills, colKills atomic.Int64
		var wg sync.WaitGroup
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
			for {
				pause := time.Duration(50+rng.IntN(250)) * time.Millisecond
				if b.name() == "moto" {
					pause = time.Duration(3000+rng.IntN(3000)) * time.Millisecond
				}
				select {
				case <-stop:
					return
				case <-time.After(pause):
				}
				if time.Since(start) > sc.chaosWindow {
					return // the rest runs without kills, to finish
				}
				mu.Lock()
				gen++
				if rng.IntN(5) == 0 {
					col.Kill()
					colKills.Add(1)
					col = e.StartCollector(fmt.Sprintf("collect-%d", gen))
				} else {
					i := rng.IntN(len(runners))
					killedNames[names[i]] = true
					runners[i].Kill()
					runnerKills.Add(1)
					names[i] = fmt.Sprintf("r%d-%d", i, gen)
					runners[i] = e.StartRunner(names[i], runnerOpts{Concurrency: 1})
				}
				mu.Unlock()
			}
		})
		ids := submitAll(t, e.Client(), specs)
		docs := waitTerminal(t, e.Store(), ids, sc.soakDeadline)
		close(stop)
		wg.Wait()
		terminal, wrong, dups := judge(t, ids, want, docs, e.Executions(t))
		kills := int(runnerKills.Load())
		unexplained := traceDuplicates(t, ids, want, e.ExecutionRunners(t), killedNames, nil)
		report(t, row{
			scenario: "1 soak with kill -9 chaos", backend: b.name(), submitted: len(ids), terminal: terminal,
			duplicates: dups, wrong: wrong, kills: kills + int(colKills.Load()), took: time.Since(start),
			pass: terminal == len(ids) && wrong == 0 && unexplained == 0 && dups <= kills,
			note: fmt.Sprintf("%d runner + %d collector kills; 4 runners × concurrency 1; duplicates not traced to a killed runner: %d (must be 0); duplicates ≤ runner kills: %v", kills, colKills.Load(), unexplained, dups <= kills),
		})
	})
}

// traceDuplicates is the soak's strict rule: every execution of a task
// beyond what it needs must be explained by a runner that was killed
// (one of the task's executions ran on it: the kill interrupted it, or
// its ack) or by a lease the test let lapse on purpose (lapsed, the
// throttle's stalls). It logs each unexplained duplicate and returns how
// many there were.
func traceDuplicates(t *testing.T, ids []string, want []expectation, runs map[string][]string, killed map[string]bool, lapsed map[string]bool) int {
	t.Helper()
	unexplained := 0
	for i, id := range ids {
		extra := len(runs[id]) - want[i].execs
		if extra <= 0 || lapsed[id] {
			continue
		}
		onKilled := 0
		for _, r := range runs[id] {
			if killed[r] {
				onKilled++
			}
		}
		if extra > onKilled {
			unexplained += extra - onKilled
			t.Errorf("task %s ran %d times (%v), %d more than it needs, but only %d of those runners were killed and no lease of it was let lapse", id, len(runs[id]), runs[id], extra, onKilled)
		}
	}
	return unexplained
}

// TestKillAfterPublish is scenario 2: a runner dies after publishing a
// task's outcome and before acking it. The collector is held back until
// the task has run again, so the re-run cannot be skipped; the final
// status stays attempt 1's and both attempts' result blobs are intact.
func TestKillAfterPublish(t *testing.T) {
	forEach(t, func(t *testing.T, b backend) {
		start := time.Now()
		e := b.newEnv(t, envOpts{Visibility: 2 * time.Second})
		n := sc.crash
		specs := make([]task.Spec, n)
		for i := range specs {
			specs[i] = task.Spec{Function: FnCrashOnce, Args: fmt.Appendf(nil, `{"seed":%d,"size":9000}`, i)}
		}
		ids := submitAll(t, e.Client(), specs)
		kills := 0
		r := e.StartRunner("crashy-0", runnerOpts{Concurrency: 1, CrashAfterOutcome: true})
		deadline := time.Now().Add(2 * time.Minute)
		for {
			ex := e.Executions(t)
			ran := 0
			for _, id := range ids {
				if ex[id] >= 2 {
					ran++
				}
			}
			if ran == n {
				break
			}
			select {
			case <-r.Done():
				kills++
				r = e.StartRunner(fmt.Sprintf("crashy-%d", kills), runnerOpts{Concurrency: 1, CrashAfterOutcome: true})
			case <-time.After(200 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("after 2m, %d of %d tasks ran twice (%d crashes)", ran, n, kills)
			}
		}
		e.StartCollector("collect")
		docs := waitTerminal(t, e.Store(), ids, time.Minute)
		// Terminal is not yet final: the events queue keeps no order, so
		// the collector may apply attempt 2's outcome first, and attempt
		// 1's wins when it comes. Give it (bounded) time to come; a task
		// left at attempt 2 then fails below.
		firstWon := func() bool {
			for _, id := range ids {
				if d := docs[id]; d == nil || d.Attempt != 1 {
					return false
				}
			}
			return true
		}
		for end := time.Now().Add(time.Minute); !firstWon() && time.Now().Before(end); {
			time.Sleep(250 * time.Millisecond)
			docs = waitTerminal(t, e.Store(), ids, time.Minute)
		}
		execs := e.Executions(t)
		terminal, wrong, dups := 0, 0, 0
		for i, id := range ids {
			d := docs[id]
			if d == nil || !d.State.Terminal() {
				continue
			}
			terminal++
			dups += execs[id] - 1
			wantBody := BigResult(i, 9000)
			bad := ""
			if d.State != task.Succeeded || d.Attempt != 1 || d.ResultRef != task.ResultKey(id, 1) {
				bad = fmt.Sprintf("final %s attempt %d ref %q, want succeeded attempt 1 ref %q", d.State, d.Attempt, d.ResultRef, task.ResultKey(id, 1))
			}
			for a := 1; a <= 2 && bad == ""; a++ {
				got, err := e.Archive().Get(context.Background(), task.ResultKey(id, a), 0)
				if err != nil || !bytes.Equal(got, wantBody) {
					bad = fmt.Sprintf("result blob of attempt %d: %v, %d bytes, want %d intact bytes", a, err, len(got), len(wantBody))
				}
			}
			if bad != "" {
				wrong++
				t.Errorf("task %s: %s", id, bad)
			}
		}
		report(t, row{
			scenario: "2 kill between publish and ack", backend: b.name(), submitted: n, terminal: terminal,
			duplicates: dups, wrong: wrong, kills: kills, took: time.Since(start),
			pass: terminal == n && wrong == 0 && dups == n && dups <= kills,
			note: "every task ran again; final status = attempt 1's; both result blobs intact",
		})
	})
}

// TestLease is scenario 3: a task running 3× the visibility timeout runs
// once while its runner heartbeats; without heartbeats it runs again and
// the collector still ends with one correct document.
func TestLease(t *testing.T) {
	forEach(t, func(t *testing.T, b backend) {
		for _, hb := range []bool{true, false} {
			t.Run(fmt.Sprintf("heartbeat=%v", hb), func(t *testing.T) {
				t.Parallel()
				start := time.Now()
				vis := time.Second
				if b.name() == "moto" {
					vis = 2 * time.Second
				}
				e := b.newEnv(t, envOpts{Visibility: vis})
				e.StartCollector("collect")
				for i := range 2 {
					e.StartRunner(fmt.Sprintf("r%d", i), runnerOpts{Concurrency: 2, NoHeartbeat: !hb})
				}
				args := fmt.Appendf(nil, `{"ms":%d}`, (3*vis + vis/2).Milliseconds())
				ids := submitAll(t, e.Client(), []task.Spec{{Function: FnSleep, Args: args, MaxAttempts: 10, Timeout: task.Duration(time.Minute)}})
				docs := waitTerminal(t, e.Store(), ids, 2*time.Minute)
				// Let stragglers (later deliveries) finish before counting.
				time.Sleep(3 * vis)
				docs = waitTerminal(t, e.Store(), ids, time.Minute)
				d := docs[ids[0]]
				execs := e.Executions(t)[ids[0]]
				page, _, err := e.Store().List(context.Background(), task.ListQuery{Function: FnSleep, Limit: 10})
				if err != nil {
					t.Fatal(err)
				}
				r := row{backend: b.name(), submitted: 1, took: time.Since(start), duplicates: execs - 1}
				ok := d != nil && d.State == task.Succeeded && d.Attempt == 1 && jsonEqual(d.Result, args) && len(page) == 1
				if d != nil && d.State.Terminal() {
					r.terminal = 1
				}
				if !ok {
					r.wrong = 1
					t.Errorf("final %+v, %d documents", d, len(page))
				}
				if hb {
					r.scenario = "3a lease, 3× visibility, heartbeats"
					r.pass = ok && execs == 1
					r.note = fmt.Sprintf("executed %d time(s); want 1", execs)
				} else {
					r.scenario = "3b lease, 3× visibility, no heartbeats"
					r.pass = ok && execs >= 2
					r.note = fmt.Sprintf("executed %d times (duplicates expected); one document, succeeded, attempt 1", execs)
				}
				report(t, r)
			})
		}
	})
}

// TestPoison is scenario 5: in one batch with healthy tasks, a message
// that is not a task, one of a wire version this build does not know, one
// whose payload reference is missing, and a task whose function panics.
func TestPoison(t *testing.T) {
	forEach(t, func(t *testing.T, b backend) {
		start := time.Now()
		e := b.newEnv(t, envOpts{Visibility: 2 * time.Second})
		now := time.Now().UTC()
		missingID, futureID := task.NewID(now), task.NewID(now)
		garbage := []byte("this is not a task message \xff")
		missing, _ := task.EncodeMessage(&task.Message{ID: missingID, Function: FnEcho, Queue: "default",
			ArgsRef: task.PayloadKey(missingID), TimeoutMS: 10000, MaxAttempts: 3, CreatedAt: now})
		future := fmt.Appendf(nil, `{"v":99,"id":%q,"function":"rel-echo","queue":"default","timeout_ms":1000,"max_attempts":3,"created_at":%q}`, futureID, now.Format(time.RFC3339Nano))
		e.SendRaw(t, garbage)
		e.SendRaw(t, missing)
		e.SendRaw(t, future)
		specs := []task.Spec{{Function: FnPanic, Args: []byte(`{}`)}}
		want := []expectation{{state: task.Failed, errSub: "panicked", execs: 1}}
		for i := range sc.poisonBatch {
			args := fmt.Appendf(nil, `{"healthy":%d}`, i)
			specs = append(specs, task.Spec{Function: FnEcho, Args: args})
			want = append(want, expectation{state: task.Succeeded, result: args, execs: 1})
		}
		ids := submitAll(t, e.Client(), specs)
		e.StartCollector("collect")
		e.StartRunner("r0", runnerOpts{Concurrency: 4})
		e.StartRunner("r1", runnerOpts{Concurrency: 4})
		ids = append(ids, missingID, futureID)
		want = append(want, expectation{state: task.Failed, errSub: "missing from the archive"},
			expectation{state: task.Failed, errSub: "undecodable message"})
		docs := waitTerminal(t, e.Store(), ids, 2*time.Minute)
		terminal, wrong, dups := judge(t, ids, want, docs, e.Executions(t))
		// The message that is not a task has no task to fail: it must be
		// archived under poison/ and acked (the queue drains).
		archived := false
		deadline := time.Now().Add(30 * time.Second)
		for !archived && time.Now().Before(deadline) {
			it := e.Archive().Bucket().List(nil)
			for {
				obj, err := it.Next(context.Background())
				if err != nil {
					break
				}
				if strings.HasPrefix(obj.Key, task.PrefixPoison) {
					if body, err := e.Archive().Get(context.Background(), obj.Key, 0); err == nil && bytes.Equal(body, garbage) {
						archived = true
					}
				}
			}
			if !archived {
				time.Sleep(300 * time.Millisecond)
			}
		}
		drained := false
		for time.Now().Before(deadline) && !drained {
			drained = e.Pending(t) == 0
			if !drained {
				time.Sleep(300 * time.Millisecond)
			}
		}
		if !archived {
			wrong++
			t.Error("the message that is not a task was not archived under poison/")
		}
		if !drained {
			t.Errorf("tasks queue still holds %d messages: poison retried?", e.Pending(t))
		}
		report(t, row{
			scenario: "5 poison in a healthy batch", backend: b.name(), submitted: len(ids) + 1, terminal: terminal + boolInt(archived),
			duplicates: dups, wrong: wrong, took: time.Since(start), pass: terminal == len(ids) && wrong == 0 && archived && drained,
			note: "not-a-task archived+acked; v99 and missing payload failed with reason; panic failed; batch completed",
		})
	})
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestBlobFaults is scenario 7 (embedded: the bucket is wrapped by a
// driver that injects errors and timeouts): results are written to, and
// claim-checked payloads read from, a bucket that fails a third of those
// calls. No task may end succeeded without its result stored intact.
func TestBlobFaults(t *testing.T) {
	t.Parallel()
	start := time.Now()
	faults := &faultConfig{WritePrefix: task.PrefixResults, ReadPrefix: task.PrefixPayloads, Rate: 0.33, Delay: 100 * time.Millisecond}
	e := memBackend{}.newEnv(t, envOpts{Visibility: 2 * time.Second, Faults: faults})
	e.StartCollector("collect")
	for i := range 2 {
		e.StartRunner(fmt.Sprintf("r%d", i), runnerOpts{Concurrency: 4})
	}
	n := sc.blobFaults
	specs := make([]task.Spec, n)
	for i := range specs {
		args := fmt.Sprintf(`{"seed":%d,"size":6000}`, i)
		if i%5 == 0 { // claim-checked: the runner reads it from the bucket
			args = fmt.Sprintf(`{"seed":%d,"size":6000,"pad":%q}`, i, strings.Repeat("p", task.DefaultPayloadLimit+1))
		}
		specs[i] = task.Spec{Function: FnBig, Args: []byte(args), MaxAttempts: 30}
	}
	ids := submitAll(t, e.Client(), specs)
	docs := waitTerminal(t, e.Store(), ids, 3*time.Minute)
	terminal, wrong, failed := 0, 0, 0
	for i, id := range ids {
		d := docs[id]
		if d == nil || !d.State.Terminal() {
			continue
		}
		terminal++
		if d.State != task.Succeeded {
			failed++
			t.Logf("task %s ended %s: %s", id, d.State, d.Error)
			continue
		}
		got, err := e.Archive().Get(context.Background(), d.ResultRef, 0)
		if d.ResultRef == "" || err != nil || !bytes.Equal(got, BigResult(i, 6000)) {
			wrong++
			t.Errorf("task %s succeeded without its result stored: ref %q, %v", id, d.ResultRef, err)
		}
	}
	report(t, row{
		scenario: "7 blob faults (errors, timeouts)", backend: "embedded", submitted: n, terminal: terminal,
		wrong: wrong, took: time.Since(start), pass: terminal == n && wrong == 0 && failed == 0,
		note: fmt.Sprintf("%d errors + %d timeouts injected on results/ writes and payloads/ reads; every succeeded task has its result; %d failed", faults.errors.Load(), faults.timeouts.Load(), failed),
	})
}
