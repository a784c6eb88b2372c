package task

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sync"
	"testing"
	"time"
	"unsafe"

	"gocloud.dev/docstore/memdocstore"
)

// history generates the events of one task as runners would publish them:
// attempts that start and retry, a last attempt that succeeds or fails,
// sometimes a duplicate execution of an attempt by a second runner, and
// sometimes a cancellation.
func history(r *rand.Rand, id string, base time.Time) []*Event {
	attempts := 1 + r.IntN(4)
	at := base
	tick := func() time.Time { at = at.Add(time.Duration(1+r.IntN(1000)) * time.Millisecond); return at }
	ev := func(attempt int, phase Phase, runner string, started time.Time) *Event {
		e := &Event{
			TaskID: id, Function: "f", Queue: "default", MaxAttempts: 5, CreatedAt: base,
			Attempt: attempt, Phase: phase, Runner: runner, At: tick(), StartedAt: started,
		}
		switch phase {
		case PhaseRetrying, PhaseFailed:
			e.Error = fmt.Sprintf("attempt %d failed", attempt)
		case PhaseSucceeded:
			e.Result = []byte(fmt.Sprintf(`{"attempt":%d}`, attempt))
		}
		return e
	}
	var out []*Event
	for a := 1; a <= attempts; a++ {
		runners := []string{fmt.Sprintf("r%d", r.IntN(3))}
		if r.IntN(5) == 0 {
			runners = append(runners, "dup")
		}
		for _, rn := range runners {
			start := tick()
			out = append(out, ev(a, PhaseStarted, rn, start))
			switch {
			case a < attempts:
				out = append(out, ev(a, PhaseRetrying, rn, start))
			case r.IntN(2) == 0:
				out = append(out, ev(a, PhaseSucceeded, rn, start))
			default:
				out = append(out, ev(a, PhaseFailed, rn, start))
			}
		}
	}
	if r.IntN(4) == 0 {
		k := r.IntN(len(out))
		c := *out[k]
		c.Phase, c.At, c.Error, c.Result = PhaseCancelled, tick(), "cancelled by request", nil
		out = append(out, &c)
	}
	return out
}

// shuffledWithDuplicates returns evs in a random order, each one or more
// times.
func shuffledWithDuplicates(r *rand.Rand, evs []*Event) []*Event {
	var out []*Event
	for _, e := range evs {
		for range 1 + r.IntN(3) {
			c := *e
			out = append(out, &c)
		}
	}
	r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// model is the document a task's history must end as, worked out from the
// documented rules on the whole set of events at once, independently of
// Status.Apply (which ranks one newcomer against the document): every
// history from history ends terminal, so the document reflects its
// winning terminal event, which is the cancellation if there is one, else
// the outcome of the earliest attempt that has one, succeeded before
// failed, then the earliest, then the runner first by name.
func model(evs []*Event) *Status {
	var win *Event
	better := func(e *Event) bool {
		switch {
		case (e.Phase == PhaseCancelled) != (win.Phase == PhaseCancelled):
			return e.Phase == PhaseCancelled
		case e.Attempt != win.Attempt:
			return e.Attempt < win.Attempt
		case e.Phase != win.Phase:
			return e.Phase == PhaseSucceeded
		case !e.At.Equal(win.At):
			return e.At.Before(win.At)
		}
		return e.Runner < win.Runner
	}
	for _, e := range evs {
		if e.Phase != PhaseSucceeded && e.Phase != PhaseFailed && e.Phase != PhaseCancelled {
			continue
		}
		if win == nil || better(e) {
			win = e
		}
	}
	if win == nil {
		panic("model: a history with no terminal event")
	}
	state := map[Phase]State{PhaseSucceeded: Succeeded, PhaseFailed: Failed, PhaseCancelled: Cancelled}[win.Phase]
	return &Status{
		ID: win.TaskID, Function: win.Function, Queue: win.Queue, MaxAttempts: win.MaxAttempts, CreatedAt: win.CreatedAt,
		State: state, Attempt: win.Attempt, Runner: win.Runner, Error: win.Error, Result: win.Result,
		StartedAt: win.StartedAt, FinishedAt: win.At,
	}
}

// sameDocument reports how got differs from the model's want, if it does.
func sameDocument(got, want *Status) string {
	switch {
	case got.ID != want.ID || got.Function != want.Function || got.Queue != want.Queue ||
		got.MaxAttempts != want.MaxAttempts || !got.CreatedAt.Equal(want.CreatedAt):
		return "identity"
	case got.State != want.State:
		return "state"
	case got.Attempt != want.Attempt:
		return "attempt"
	case got.Runner != want.Runner:
		return "runner"
	case got.Error != want.Error:
		return "error"
	case string(got.Result) != string(want.Result):
		return "result"
	case !got.StartedAt.Equal(want.StartedAt):
		return "started_at"
	case !got.FinishedAt.Equal(want.FinishedAt):
		return "finished_at"
	}
	return ""
}

// TestApplyMatchesModel: applying a task's events in the order they
// happened gives the model's document.
func TestApplyMatchesModel(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for n := range 2000 {
		evs := history(r, NewID(base), base)
		got, want := applyAll(evs), model(evs)
		if d := sameDocument(got, want); d != "" {
			t.Fatalf("history %d: %s differs:\n got %+v\nwant %+v", n, d, got, want)
		}
	}
}

func applyAll(evs []*Event) *Status {
	st := &Status{}
	for _, e := range evs {
		st.Apply(e)
	}
	return st
}

// TestApplyOrderIndependent: any order and any number of duplicates of a
// task's events give the same document as applying them in the order they
// happened.
func TestApplyOrderIndependent(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for n := range 2000 {
		id := NewID(base)
		evs := history(r, id, base)
		want := applyAll(evs)
		for range 5 {
			got := applyAll(shuffledWithDuplicates(r, evs))
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("history %d: shuffled apply gave\n%+v\nwant\n%+v", n, got, want)
			}
		}
	}
}

// TestApplyRules checks the ranking on the cases that matter to users.
func TestApplyRules(t *testing.T) {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return base.Add(time.Duration(s) * time.Second) }
	ev := func(attempt int, p Phase, s int) *Event {
		return &Event{TaskID: "01ARZ3NDEKTSV4RRFFQ69G5FAV", Attempt: attempt, Phase: p, At: at(s), Runner: "r", CreatedAt: base}
	}
	cases := []struct {
		name    string
		events  []*Event
		state   State
		attempt int
	}{
		{"in order", []*Event{ev(1, PhaseStarted, 1), ev(1, PhaseSucceeded, 2)}, Succeeded, 1},
		{"terminal first", []*Event{ev(1, PhaseSucceeded, 2), ev(1, PhaseStarted, 1)}, Succeeded, 1},
		{"later attempt beats earlier", []*Event{ev(2, PhaseStarted, 3), ev(1, PhaseRetrying, 2)}, Running, 2},
		{"retry then next start", []*Event{ev(1, PhaseRetrying, 2), ev(2, PhaseStarted, 3)}, Running, 2},
		{"terminal never regresses", []*Event{ev(2, PhaseFailed, 5), ev(3, PhaseStarted, 6)}, Failed, 2},
		{"cancel beats success", []*Event{ev(1, PhaseCancelled, 2), ev(1, PhaseSucceeded, 3)}, Cancelled, 1},
		{"first outcome stands", []*Event{ev(2, PhaseFailed, 5), ev(1, PhaseSucceeded, 3)}, Succeeded, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := applyAll(c.events)
			if st.State != c.state || st.Attempt != c.attempt {
				t.Fatalf("state %s attempt %d, want %s attempt %d", st.State, st.Attempt, c.state, c.attempt)
			}
			if st.State.Terminal() != !st.FinishedAt.IsZero() {
				t.Fatalf("finished_at %v with state %s", st.FinishedAt, st.State)
			}
		})
	}
}

// TestStoreApplyShuffledConcurrent feeds the events of many tasks,
// shuffled and duplicated, through two collectors racing on one store in
// random batches: every document ends as the model says (no lost update),
// the model being model, not the Apply under test.
// It runs here on gocloud's memdocstore, and on Drover's memstore in
// store_direct_test.go (an external test: memstore imports this package).
func TestStoreApplyShuffledConcurrent(t *testing.T) {
	coll, err := memdocstore.OpenCollection("id", nil)
	if err != nil {
		t.Fatal(err)
	}
	testStoreApplyShuffledConcurrent(t, NewStore(coll))
}

func testStoreApplyShuffledConcurrent(t *testing.T, store *Store) {
	ctx := context.Background()
	defer store.Close()

	r := rand.New(rand.NewPCG(3, 4))
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	want := map[string]*Status{}
	var all []*Event
	for range 500 {
		id := NewID(base)
		evs := history(r, id, base)
		want[id] = model(evs)
		all = append(all, shuffledWithDuplicates(r, evs)...)
	}
	r.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })

	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for c := range 2 {
		wg.Go(func() {
			rr := rand.New(rand.NewPCG(uint64(c), 9))
			for i := c; i < len(all); {
				n := 1 + rr.IntN(50)
				var batch []*Event
				for ; n > 0 && i < len(all); n, i = n-1, i+2 {
					batch = append(batch, all[i])
				}
				if _, err := store.Apply(ctx, batch); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for id, w := range want {
		got, err := store.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if d := sameDocument(got, w); d != "" {
			t.Fatalf("task %s: %s differs:\n got %+v\nwant %+v", id, d, got, w)
		}
	}
}

// TestApplySharesNames: documents built from decoded events share one copy
// of their function, queue and runner names and hold the phase constant,
// not each the copy its decoder made.
func TestApplySharesNames(t *testing.T) {
	fresh := func(s string) string { return string([]byte(s)) } // a copy, as a decoder makes
	apply := func() *Status {
		st := &Status{}
		st.Apply(&Event{
			TaskID: NewID(time.Now()), Function: fresh("resize"), Queue: fresh("images"), Runner: fresh("host-1"),
			Phase: Phase(fresh("succeeded")), Attempt: 1, MaxAttempts: 3, At: time.Now(),
		})
		return st
	}
	a, b := apply(), apply()
	same := func(x, y string) bool { return unsafe.StringData(x) == unsafe.StringData(y) }
	if !same(a.Function, b.Function) || !same(a.Queue, b.Queue) || !same(a.Runner, b.Runner) {
		t.Fatalf("names not shared: %q %q %q", a.Function, a.Queue, a.Runner)
	}
	if !same(string(a.Phase), string(PhaseSucceeded)) || a.State != Succeeded {
		t.Fatalf("phase %q is not the constant", a.Phase)
	}
}
