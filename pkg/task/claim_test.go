package task_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/droverhq/drover/pkg/memstore"
	"github.com/droverhq/drover/pkg/task"
)

// cappedStore is a status store holding at most capN task documents, as
// the embedded default's cap does.
func cappedStore(t testing.TB, capN int) *task.Store {
	t.Helper()
	c, err := memstore.OpenCollection("id", &memstore.Options{ExpiryField: "expires_at", Cap: capN, CapField: "kind", CapValue: task.KindTask})
	if err != nil {
		t.Fatal(err)
	}
	s := task.NewStore(c)
	s.Retention = time.Hour
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func accepted(now time.Time) *task.Status {
	return &task.Status{ID: task.NewID(now), Function: "echo", Queue: "default", State: task.Queued, MaxAttempts: 3, CreatedAt: now}
}

var terms = task.KeyTerms{Fingerprint: "fp-1", Window: 24 * time.Hour, Takeover: 2 * time.Minute}

// TestClaimKeyOneWinner: any number of concurrent claims of one key, with
// the first claimant as slow as it likes, leave one claim, and every
// other claimant is told its task: nothing is taken over however long the
// claim stays pending (finding 1).
func TestClaimKeyOneWinner(t *testing.T) {
	s := cappedStore(t, 1000)
	ctx := context.Background()
	now := time.Now().UTC()
	const n = 50
	got := make([]*task.KeyClaim, n)
	mine := make([]*task.Status, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			mine[i] = accepted(now)
			c, err := s.ClaimKey(ctx, "one-key", mine[i], terms, now)
			if err != nil {
				t.Error(err)
				return
			}
			got[i] = c
		})
	}
	wg.Wait()
	winner := ""
	for i, c := range got {
		if c == nil {
			t.Fatal("a claim failed")
		}
		if c.TaskID == mine[i].ID {
			if winner != "" {
				t.Fatalf("two claimants won: %s and %s", winner, c.TaskID)
			}
			winner = c.TaskID
		}
	}
	if winner == "" {
		t.Fatal("no claimant won")
	}
	for _, c := range got {
		if c.TaskID != winner || !c.Pending {
			t.Fatalf("claim %+v, want task %s pending", c, winner)
		}
	}
	// Long after (but inside the window and before the takeover time),
	// with no task document at all, the claim still names the first task.
	later := now.Add(time.Minute)
	c, err := s.ClaimKey(ctx, "one-key", accepted(later), terms, later)
	if err != nil || c.TaskID != winner {
		t.Fatalf("claim a minute later: %+v, %v; want %s", c, err, winner)
	}
}

// TestClaimOutlivesStatus: a committed claim names its task for the whole
// window, after the task's document was evicted by the store's cap
// (finding 1: a replay after later tasks had filled the cap ran again).
func TestClaimOutlivesStatus(t *testing.T) {
	s := cappedStore(t, 10)
	ctx := context.Background()
	now := time.Now().UTC()
	first := accepted(now)
	c, err := s.ClaimKey(ctx, "k", first, terms, now)
	if err != nil || c.TaskID != first.ID {
		t.Fatalf("claim: %+v %v", c, err)
	}
	if err := s.CreateMany(ctx, []*task.Status{first}); err != nil {
		t.Fatal(err)
	}
	if err := s.CommitKey(ctx, c); err != nil {
		t.Fatal(err)
	}
	// First finishes, then 50 later tasks finish: the cap evicts it.
	finish := func(st *task.Status, at time.Time) {
		t.Helper()
		ev := &task.Event{TaskID: st.ID, Function: st.Function, Queue: st.Queue, MaxAttempts: 3, CreatedAt: st.CreatedAt,
			Attempt: 1, Phase: task.PhaseSucceeded, Runner: "r", At: at, StartedAt: at}
		if _, err := s.Apply(ctx, []*task.Event{ev}); err != nil {
			t.Fatal(err)
		}
	}
	finish(first, now)
	for i := range 50 {
		st := accepted(now)
		finish(st, now.Add(time.Duration(i+1)*time.Second))
	}
	if _, err := s.Get(ctx, first.ID); err == nil {
		t.Fatal("the cap did not evict the first task's document; the test proves nothing")
	}
	later := now.Add(23 * time.Hour)
	again, err := s.ClaimKey(ctx, "k", accepted(later), terms, later)
	if err != nil {
		t.Fatal(err)
	}
	if again.TaskID != first.ID || again.Pending {
		t.Fatalf("replay after eviction: %+v, want committed claim of %s", again, first.ID)
	}
	if a := again.Accepted(); a.ID != first.ID || a.Function != "echo" || a.MaxAttempts != 3 || !a.CreatedAt.Equal(first.CreatedAt) {
		t.Fatalf("accepted status %+v, want the first task's", a)
	}
	// Once the window is over, the key is free.
	after := now.Add(25 * time.Hour)
	next := accepted(after)
	if c, err := s.ClaimKey(ctx, "k", next, terms, after); err != nil || c.TaskID != next.ID {
		t.Fatalf("claim after the window: %+v %v, want %s", c, err, next.ID)
	}
}

// TestTakeOverFence: a pending claim past its takeover time passes to a
// new task only when the first task provably never started; once a runner
// has started it (Store.StartMany), the takeover commits the first claim
// instead. In both cases exactly one of the two tasks can run.
func TestTakeOverFence(t *testing.T) {
	ctx := context.Background()
	for _, started := range []bool{false, true} {
		t.Run(fmt.Sprintf("started=%v", started), func(t *testing.T) {
			s := cappedStore(t, 1000)
			now := time.Now().UTC()
			first := accepted(now)
			c1, err := s.ClaimKey(ctx, "k", first, terms, now)
			if err != nil {
				t.Fatal(err)
			}
			// The first claimant enqueued (or not) and stalled before
			// recording anything.
			startEv := &task.Event{TaskID: first.ID, Function: "echo", Queue: "default", MaxAttempts: 3, CreatedAt: now, Runner: "r1", At: now}
			if started {
				res, err := s.StartMany(ctx, []*task.Event{startEv})
				if err != nil || res[0].Attempt != 1 {
					t.Fatalf("start: %+v %v", res, err)
				}
			}
			late := now.Add(3 * time.Minute)
			second := accepted(late)
			old, err := s.ClaimKey(ctx, "k", second, terms, late)
			if err != nil || old.TaskID != first.ID || !old.Pending || !late.After(old.TakeoverAt) {
				t.Fatalf("claim: %+v %v", old, err)
			}
			got, err := s.TakeOverKey(ctx, old, second, terms, late)
			if err != nil {
				t.Fatal(err)
			}
			// The first claimant wakes up and tries to commit.
			commitErr := s.CommitKey(ctx, c1)
			// Another delivery of the first task starts (another runner:
			// startEv again would be the first start, found written).
			againEv := *startEv
			againEv.Runner, againEv.At = "r2", late
			again, err := s.StartMany(ctx, []*task.Event{&againEv})
			if err != nil {
				t.Fatal(err)
			}
			if started {
				if got.TaskID != first.ID || got.Pending || commitErr != nil {
					t.Fatalf("takeover of a started task: claim %+v, commit %v; want the first task's, committed", got, commitErr)
				}
				if again[0].Attempt != 2 || again[0].State != "" {
					t.Fatalf("a second start of the first task: %+v, want attempt 2", again[0])
				}
				return
			}
			if got.TaskID != second.ID || !got.Pending {
				t.Fatalf("takeover: claim %+v, want the second task's, pending", got)
			}
			if commitErr == nil {
				t.Fatal("the first claimant committed a claim that was taken over")
			}
			if again[0].State != task.Cancelled {
				t.Fatalf("a runner would start the fenced-off task: %+v", again[0])
			}
			st, err := s.Get(ctx, first.ID)
			if err != nil || st.State != task.Cancelled {
				t.Fatalf("fenced-off task: %+v %v", st, err)
			}
		})
	}
}

// TestStartManyCountsExecutions: attempts are numbered from the status
// document, one per start, however many deliveries there were; starts of
// a terminal task, or past max_attempts, are refused without a write
// (finding 2).
func TestStartManyCountsExecutions(t *testing.T) {
	s := cappedStore(t, 1000)
	ctx := context.Background()
	now := time.Now().UTC()
	st := accepted(now)
	if err := s.CreateMany(ctx, []*task.Status{st}); err != nil {
		t.Fatal(err)
	}
	ev := func(r string) *task.Event {
		return &task.Event{TaskID: st.ID, Function: "echo", Queue: "default", MaxAttempts: 3, CreatedAt: now, Runner: r, At: time.Now().UTC()}
	}
	// Three concurrent starts (three runners holding copies of the
	// message): three distinct attempts.
	var wg sync.WaitGroup
	attempts := make([]int, 3)
	for i := range 3 {
		wg.Go(func() {
			res, err := s.StartMany(ctx, []*task.Event{ev(fmt.Sprintf("r%d", i))})
			if err != nil {
				t.Error(err)
				return
			}
			attempts[i] = res[0].Attempt
		})
	}
	wg.Wait()
	seen := map[int]bool{}
	for _, a := range attempts {
		seen[a] = true
	}
	if !seen[1] || !seen[2] || !seen[3] {
		t.Fatalf("concurrent starts got attempts %v, want 1, 2, 3", attempts)
	}
	res, err := s.StartMany(ctx, []*task.Event{ev("r9")})
	if err != nil || !res[0].GaveUp || res[0].Attempt != 3 {
		t.Fatalf("a fourth start: %+v %v, want gave up after attempt 3", res, err)
	}
	doc, _ := s.Get(ctx, st.ID)
	if doc.Attempt != 3 || doc.State != task.Running {
		t.Fatalf("document %+v, want running attempt 3 (the refused start writes nothing)", doc)
	}
	done := ev("r1")
	done.Attempt, done.Phase = 3, task.PhaseSucceeded
	if _, err := s.Apply(ctx, []*task.Event{done}); err != nil {
		t.Fatal(err)
	}
	res, err = s.StartMany(ctx, []*task.Event{ev("r9")})
	if err != nil || res[0].State != task.Succeeded {
		t.Fatalf("start of a succeeded task: %+v %v", res, err)
	}
}

// TestStartManyDuplicateDeliveries: one call holding two deliveries of
// one task (SQS and moto deliver a message to concurrent receivers, and
// the runner batches its workers' starts) gets two distinct attempts on
// a gocloud docstore, whose action lists refuse a key named twice, and
// GetMany answers for every copy of an id.
func TestStartManyDuplicateDeliveries(t *testing.T) {
	ctx := context.Background()
	s, err := task.OpenStore(ctx, "mem://start-dups/id")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	now := time.Now().UTC()
	st, other := accepted(now), accepted(now.Add(time.Millisecond))
	if err := s.CreateMany(ctx, []*task.Status{st, other}); err != nil {
		t.Fatal(err)
	}
	ev := func(id, r string) *task.Event {
		return &task.Event{TaskID: id, Function: "echo", Queue: "default", MaxAttempts: 3, CreatedAt: now, Runner: r, At: time.Now().UTC()}
	}
	got, err := s.GetMany(ctx, []string{st.ID, other.ID, st.ID})
	if err != nil || len(got) != 3 || got[0] == nil || got[2] == nil || got[0].ID != st.ID || got[2].ID != st.ID || got[1].ID != other.ID || got[0] == got[2] {
		t.Fatalf("GetMany with an id twice: %+v, %v; want each copy its own document", got, err)
	}
	res, err := s.StartMany(ctx, []*task.Event{ev(st.ID, "a"), ev(other.ID, "a"), ev(st.ID, "b")})
	if err != nil {
		t.Fatalf("StartMany with two deliveries of one task: %v", err)
	}
	if a, b := res[0].Attempt, res[2].Attempt; a+b != 3 || a == b || res[1].Attempt != 1 {
		t.Fatalf("attempts %+v, want 1 and 2 for the duplicated task and 1 for the other", res)
	}
	doc, err := s.Get(ctx, st.ID)
	if err != nil || doc.Attempt != 2 || doc.State != task.Running {
		t.Fatalf("document %+v, %v; want running attempt 2", doc, err)
	}
}

// TestStartManyOnce: a start passed again (its first call's write landed
// but the caller never learned it, so it asks again) is answered with the
// attempt it recorded, and writes nothing; another start of the task,
// on another runner or later on the same one, is the next attempt.
func TestStartManyOnce(t *testing.T) {
	s := cappedStore(t, 1000)
	ctx := context.Background()
	now := time.Now().UTC()
	st := accepted(now)
	if err := s.CreateMany(ctx, []*task.Status{st}); err != nil {
		t.Fatal(err)
	}
	ev := func(r string, at time.Time) *task.Event {
		return &task.Event{TaskID: st.ID, Function: "echo", Queue: "default", MaxAttempts: 3, CreatedAt: now, Runner: r, At: at}
	}
	first := ev("r1", now.Add(time.Second))
	for i := range 3 {
		res, err := s.StartMany(ctx, []*task.Event{first})
		if err != nil || res[0].Attempt != 1 || res[0].GaveUp || res[0].State != "" {
			t.Fatalf("call %d with the first start: %+v %v, want attempt 1", i+1, res, err)
		}
	}
	for i, e := range []*task.Event{ev("r2", now.Add(time.Second)), ev("r1", now.Add(2*time.Second))} {
		res, err := s.StartMany(ctx, []*task.Event{e})
		if err != nil || res[0].Attempt != i+2 {
			t.Fatalf("start %d: %+v %v, want attempt %d", i+2, res, err, i+2)
		}
	}
	doc, err := s.Get(ctx, st.ID)
	if err != nil || doc.Attempt != 3 || doc.Runner != "r1" {
		t.Fatalf("document %+v %v, want running attempt 3 on r1", doc, err)
	}
}
