package reliability

import (
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

// wfTimeout is the workflow tasks' timeout: a task whose last attempt died
// with a killed runner is given up a minute after it (as in soakSpecs).
const wfTimeout = task.Duration(30 * time.Second)

// TestWorkflowChaos is scenario 8: groups with a callback and chains of
// steps while runners and the collector are killed (-9) and restarted at
// random. Every callback and every chain step must have exactly one
// document in the store (counted by listing the store), each succeeding
// group's callback must have seen all its members' results in index
// order, and every task must end as the model says: a group with a member
// that fails for good fails and its callback is cancelled unrun; a chain
// stops at a step that fails for good and the rest are cancelled.
func TestWorkflowChaos(t *testing.T) {
	forEach(t, func(t *testing.T, b backend) {
		start := time.Now()
		vis := 2 * time.Second
		if b.name() == "moto" {
			vis = 5 * time.Second
		}
		e := b.newEnv(t, envOpts{Visibility: vis})
		c := e.Client()
		ctx := context.Background()
		var mu sync.Mutex
		col := e.StartCollector("collect-0")
		runners := make([]proc, 4)
		for i := range runners {
			runners[i] = e.StartRunner(fmt.Sprintf("r%d-0", i), runnerOpts{Concurrency: 2})
		}

		type groupWant struct {
			id, callback string
			fails        int // index of the member that fails for good, -1 for none
		}
		type chainWant struct {
			ids   []string
			fails int // step that fails for good, -1 for none
		}
		var groups []groupWant
		var chains []chainWant
		// Submission first, then chaos while they run.
		for g := range sc.groups {
			spec := task.GroupSpec{Then: &task.Spec{Function: FnEcho, MaxAttempts: 6, Timeout: wfTimeout}}
			fails := -1
			if g%5 == 4 {
				fails = g % sc.members
			}
			for i := range sc.members {
				if i == fails {
					spec.Tasks = append(spec.Tasks, task.Spec{Function: FnFail, Args: json.RawMessage(fmt.Sprintf(`{"always":true,"message":"member %d of group %d"}`, i, g)), MaxAttempts: 2, Timeout: wfTimeout})
					continue
				}
				spec.Tasks = append(spec.Tasks, task.Spec{Function: FnEcho, Args: json.RawMessage(fmt.Sprintf(`{"g":%d,"i":%d}`, g, i)), MaxAttempts: 6, Timeout: wfTimeout})
			}
			gr, err := submitRetry(func(ctx context.Context) (*task.Group, error) { return c.SubmitGroup(ctx, spec) })
			if err != nil {
				t.Fatalf("submit group %d: %v", g, err)
			}
			groups = append(groups, groupWant{id: gr.ID, callback: gr.Callback, fails: fails})
		}
		for k := range sc.chains {
			fails := -1
			if k%4 == 3 {
				fails = sc.steps / 2
			}
			var first *task.Spec
			var cur *task.Spec
			for s := range sc.steps {
				sp := &task.Spec{Function: FnEcho, Args: json.RawMessage(fmt.Sprintf(`[%d]`, s)), MaxAttempts: 6, Timeout: wfTimeout}
				if s == 0 {
					sp.Args = json.RawMessage(fmt.Sprintf(`{"chain":%d}`, k))
				}
				if s == fails {
					sp = &task.Spec{Function: FnFail, Args: json.RawMessage(fmt.Sprintf(`{"always":true,"message":"step %d of chain %d"}`, s, k)), MaxAttempts: 2, Timeout: wfTimeout}
				}
				if first == nil {
					first = sp
				} else {
					cur.Then = sp
				}
				cur = sp
			}
			st, err := submitRetry(func(ctx context.Context) (*task.Status, error) { return c.Submit(ctx, *first) })
			if err != nil {
				t.Fatalf("submit chain %d: %v", k, err)
			}
			ids := []string{st.ID}
			for range sc.steps - 1 {
				ids = append(ids, task.NextID(ids[len(ids)-1]))
			}
			chains = append(chains, chainWant{ids: ids, fails: fails})
		}

		chaosStart := time.Now()
		stop := make(chan struct{})
		var runnerKills, colKills atomic.Int64
		var wg sync.WaitGroup
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 8))
			gen := 0
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
				if time.Since(chaosStart) > sc.chaosWindow {
					return
				}
				mu.Lock()
				gen++
				if rng.IntN(4) == 0 {
					col.Kill()
					colKills.Add(1)
					col = e.StartCollector(fmt.Sprintf("collect-%d", gen))
				} else {
					i := rng.IntN(len(runners))
					runners[i].Kill()
					runnerKills.Add(1)
					runners[i] = e.StartRunner(fmt.Sprintf("r%d-%d", i, gen), runnerOpts{Concurrency: 2})
				}
				mu.Unlock()
			}
		})

		var ids []string
		for _, g := range groups {
			for i := range sc.members {
				ids = append(ids, task.MemberID(g.id, i))
			}
			ids = append(ids, g.callback)
		}
		for _, ch := range chains {
			ids = append(ids, ch.ids...)
		}
		deadline := sc.soakDeadline
		if b.name() == "moto" {
			deadline *= 2 // an emulator under load takes seconds per receive
		}
		docs := waitTerminal(t, e.Store(), ids, deadline)
		dumpIfStuck(t, e, ids, docs)
		close(stop)
		wg.Wait()
		execs := e.Executions(t)

		wrong, shown := 0, 0
		bad := func(format string, a ...any) {
			wrong++
			if shown++; shown <= 10 {
				t.Errorf(format, a...)
			}
		}
		for gi, g := range groups {
			cb := docs[g.callback]
			if cb == nil {
				bad("group %d %s: callback %s has no document", gi, g.id, g.callback)
				continue
			}
			for i := range sc.members {
				m := docs[task.MemberID(g.id, i)]
				want := task.Succeeded
				if i == g.fails {
					want = task.Failed
				}
				if m == nil || m.State != want || m.Group == nil || m.Group.ID != g.id || m.Group.Index != i {
					bad("group %d member %d: %+v, want %s", gi, i, m, want)
				}
			}
			if g.fails >= 0 {
				if cb.State != task.Cancelled || execs[g.callback] != 0 || !strings.Contains(cb.Error, "did not succeed") {
					bad("group %d with a failed member: callback %s ran %d times and ended %s (%q), want cancelled unrun", gi, g.callback, execs[g.callback], cb.State, cb.Error)
				}
				continue
			}
			var results []task.MemberResult
			if cb.State != task.Succeeded || json.Unmarshal(cb.Result, &results) != nil || len(results) != sc.members {
				bad("group %d callback %s: %s with result %.200s, want %d results", gi, g.callback, cb.State, cb.Result, sc.members)
				continue
			}
			for i, r := range results {
				if r.Index != i || r.TaskID != task.MemberID(g.id, i) || r.State != task.Succeeded || !jsonEqual(r.Result, fmt.Appendf(nil, `{"g":%d,"i":%d}`, gi, i)) {
					bad("group %d callback input %d: %+v", gi, i, r)
					break
				}
			}
		}
		for ci, ch := range chains {
			var prev json.RawMessage
			for s, id := range ch.ids {
				d := docs[id]
				if d == nil {
					bad("chain %d step %d %s has no document", ci, s, id)
					break
				}
				switch {
				case ch.fails < 0 || s < ch.fails:
					want := json.RawMessage(fmt.Sprintf(`{"chain":%d}`, ci))
					if s > 0 {
						want = json.RawMessage(fmt.Sprintf(`[%s,%d]`, prev, s))
					}
					if d.State != task.Succeeded || !jsonEqual(d.Result, want) {
						bad("chain %d step %d: %s result %s, want succeeded with %s", ci, s, d.State, d.Result, want)
					}
					prev = want
				case s == ch.fails:
					if d.State != task.Failed {
						bad("chain %d step %d: %s, want failed", ci, s, d.State)
					}
				default:
					if d.State != task.Cancelled || execs[id] != 0 || !strings.Contains(d.Error, "previous step") {
						bad("chain %d step %d: %s (%q) after %d runs, want cancelled unrun", ci, s, d.State, d.Error, execs[id])
					}
				}
				if s > 0 && d.Previous != ch.ids[s-1] {
					bad("chain %d step %d: previous %q, want %s", ci, s, d.Previous, ch.ids[s-1])
				}
			}
		}

		// Exactly one document per callback and per chain step: list the
		// whole store and count the documents that name each group or
		// predecessor.
		callbacks, successors := map[string]int{}, map[string]int{}
		total := 0
		for cursor := ""; ; {
			page, next, err := e.Store().List(ctx, task.ListQuery{Limit: 1000, Cursor: cursor})
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range page {
				total++
				if d.CallbackOf != "" {
					callbacks[d.CallbackOf]++
				}
				if d.Previous != "" {
					successors[d.Previous]++
				}
			}
			if next == "" {
				break
			}
			cursor = next
		}
		created := 0
		for _, g := range groups {
			if n := callbacks[g.id]; n != 1 {
				bad("group %s has %d callback documents, want 1", g.id, n)
			}
			created += callbacks[g.id]
		}
		for _, ch := range chains {
			for _, id := range ch.ids[:len(ch.ids)-1] {
				if n := successors[id]; n != 1 {
					bad("chain step %s has %d successor documents, want 1", id, n)
				}
				created += successors[id]
			}
		}
		if total < len(ids) {
			bad("the store lists %d task documents, fewer than the %d submitted", total, len(ids))
		}

		terminal, dups := 0, 0
		for _, id := range ids {
			if d := docs[id]; d != nil && d.State.Terminal() {
				terminal++
			}
			// Needed runs: 1 for those that ran, 2 for fail (max_attempts 2).
			if n := execs[id]; n > 2 {
				dups += n - 2
			}
		}
		kills := int(runnerKills.Load() + colKills.Load())
		report(t, row{
			scenario: "8 workflows with kill -9 chaos", backend: b.name(), submitted: len(ids), terminal: terminal,
			duplicates: dups, wrong: wrong, kills: kills, took: time.Since(start),
			pass: terminal == len(ids) && wrong == 0,
			note: fmt.Sprintf("%d groups × %d + %d chains × %d; %d runner + %d collector kills; %d callback and step documents, each exactly once",
				sc.groups, sc.members, sc.chains, sc.steps, runnerKills.Load(), colKills.Load(), created),
		})
	})
}

// submitRetry retries a workflow submission that failed with a transient
// error (a 503 from a slow queue). A failed group submission is rolled
// back or cancelled, so a retry makes a new one.
func submitRetry[T any](submit func(context.Context) (T, error)) (T, error) {
	var out T
	var err error
	for try := 1; try <= 5; try++ {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		out, err = submit(ctx)
		cancel()
		if err == nil {
			return out, nil
		}
		time.Sleep(time.Second)
	}
	return out, err
}
