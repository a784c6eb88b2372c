package task

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gocloud.dev/blob/memblob"
	"gocloud.dev/docstore/memdocstore"

	"github.com/droverhq/drover/pkg/memq"
)

var wfSeq atomic.Int64

// wfBundle is a store, an archive and a tasks topic for workflow tests.
type wfBundle struct {
	store *Store
	flow  *Workflow
	queue string
}

func newWFBundle(t *testing.T) *wfBundle {
	t.Helper()
	coll, err := memdocstore.OpenCollection("id", nil)
	if err != nil {
		t.Fatal(err)
	}
	store := NewStore(coll)
	name := fmt.Sprintf("wf-%d", wfSeq.Add(1))
	topic, err := OpenTopic(context.Background(), "memq://"+name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = topic.Shutdown(context.Background())
		store.Close()
		memq.Delete(name)
	})
	return &wfBundle{
		store: store, queue: name,
		flow: &Workflow{Store: store, Archive: NewArchive(memblob.OpenBucket(nil)), Tasks: topic},
	}
}

// newGroup writes a group of n members with a callback whose own args are
// {"own":1}, as the dispatcher does.
func (b *wfBundle) newGroup(t *testing.T, n int, onFailure string, now time.Time) string {
	t.Helper()
	ctx := context.Background()
	gid := NewID(now)
	cb := CallbackID(gid)
	if err := b.store.CreateGroup(ctx, gid, n, onFailure, cb, now); err != nil {
		t.Fatal(err)
	}
	body, err := EncodeMessage(&Message{ID: cb, Function: "cb", Queue: "default", Args: json.RawMessage(`{"own":1}`), TimeoutMS: 1000, MaxAttempts: 1, CreatedAt: now})
	if err != nil {
		t.Fatal(err)
	}
	docs := []*Status{{ID: cb, Function: "cb", Queue: "default", State: Waiting, MaxAttempts: 1, CreatedAt: now, Pending: string(body), CallbackOf: gid}}
	for i := range n {
		docs = append(docs, &Status{ID: MemberID(gid, i), Function: "f", Queue: "default", State: Queued, MaxAttempts: 5, CreatedAt: now, Group: &GroupRef{ID: gid, Index: i}})
	}
	if err := b.store.CreateSteps(ctx, docs); err != nil {
		t.Fatal(err)
	}
	return gid
}

// collect is what the collector does with a batch of events: apply them,
// then move their workflows on. crash leaves out the second step, as a
// collector killed between the two: the events are then redelivered.
func (b *wfBundle) collect(ctx context.Context, batch []*Event, crash bool) (redeliver bool, err error) {
	_, linked, err := b.store.ApplyLinked(ctx, batch)
	if err != nil {
		return false, err
	}
	if crash {
		return true, nil
	}
	return false, b.flow.Advance(ctx, linked)
}

// feed applies evs in random batches, with a crash between the two steps
// of one batch in crashEvery (0: never); crashed batches come back later.
func (b *wfBundle) feed(t *testing.T, r *rand.Rand, evs []*Event, crashEvery int) {
	queue := append([]*Event{}, evs...)
	for len(queue) > 0 {
		n := min(len(queue), 1+r.IntN(12))
		batch := queue[:n]
		queue = queue[n:]
		crash := crashEvery > 0 && r.IntN(crashEvery) == 0
		again, err := b.collect(context.Background(), batch, crash)
		if err != nil {
			t.Error(err)
			return
		}
		if again {
			queue = append(queue, batch...)
		}
	}
}

// TestGroupEventsAnyOrder is acceptance 4: any permutation and
// duplication of a group's members' events, applied in random batches by
// one collector, by one that crashes between applying events and moving
// the group on, and by two racing, gives the same group document, one
// callback document, and a callback message (exactly one, unless two
// collectors raced to release it: then copies of the same message) whose
// input is every member's final status in index order.
func TestGroupEventsAnyOrder(t *testing.T) {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 15))
	trials := 12
	if testing.Short() {
		trials = 5
	}
	for trial := range trials {
		n := 1 + r.IntN(24)
		policy := []string{OnFailureFail, OnFailureContinue}[r.IntN(2)]
		// One history per member, and the finals they must end as.
		hist := make([][]*Event, n)
		var docsWant []*Status
		for i := range n {
			hist[i] = memberHistory(r, base)
			docsWant = append(docsWant, applyAll(hist[i]))
		}
		var first *groupDoc
		for _, mode := range []string{"one collector", "crashing collector", "two collectors racing"} {
			b := newWFBundle(t)
			gid := b.newGroup(t, n, policy, base)
			var all []*Event
			for i, h := range hist {
				for _, e := range h {
					c := *e
					c.TaskID = MemberID(gid, i)
					all = append(all, &c)
				}
			}
			all = shuffledWithDuplicates(r, all)
			switch mode {
			case "one collector":
				b.feed(t, r, all, 0)
			case "crashing collector":
				b.feed(t, r, all, 3)
			default:
				var wg sync.WaitGroup
				for c := range 2 {
					evs := append([]*Event{}, all...)
					rr := rand.New(rand.NewPCG(uint64(trial), uint64(c)))
					rr.Shuffle(len(evs), func(i, j int) { evs[i], evs[j] = evs[j], evs[i] })
					wg.Go(func() { b.feed(t, rr, evs, 0) })
				}
				wg.Wait()
			}
			if t.Failed() {
				return
			}
			g, err := b.store.getGroup(context.Background(), gid)
			if err != nil {
				t.Fatal(err)
			}
			anyFailed := false
			for i, w := range docsWant {
				if !bitSet(g.Done, i) || bitSet(g.Failed, i) != (w.State != Succeeded) {
					t.Fatalf("trial %d %s: member %d ended %s, bits done=%v failed=%v", trial, mode, i, w.State, bitSet(g.Done, i), bitSet(g.Failed, i))
				}
				anyFailed = anyFailed || w.State != Succeeded
			}
			if !g.Released {
				t.Fatalf("trial %d %s: group not released: %+v", trial, mode, g)
			}
			if first == nil {
				first = g
			} else if !reflect.DeepEqual([][]byte{first.Done, first.Failed}, [][]byte{g.Done, g.Failed}) || first.Released != g.Released {
				t.Fatalf("trial %d: %s gives group %+v, one collector %+v", trial, mode, g, first)
			}

			cb, err := b.store.Get(context.Background(), CallbackID(gid))
			if err != nil {
				t.Fatal(err)
			}
			sent := memq.Stats(b.queue).Sent
			if policy == OnFailureFail && anyFailed {
				if cb.State != Cancelled || sent != 0 || !strings.Contains(cb.Error, "did not succeed") {
					t.Fatalf("trial %d %s: a failed member's callback %s (%q), %d messages sent; want cancelled, none", trial, mode, cb.State, cb.Error, sent)
				}
				continue
			}
			if cb.State != Queued || cb.Pending != "" || sent < 1 || (mode != "two collectors racing" && sent != 1) {
				t.Fatalf("trial %d %s: callback %s pending=%v, %d messages sent", trial, mode, cb.State, cb.Pending != "", sent)
			}
			// Every message sent is the same callback with the same input.
			sub, err := OpenSubscription(context.Background(), "memq://"+b.queue)
			if err != nil {
				t.Fatal(err)
			}
			var bodies []string
			for range sent {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				d, err := sub.Receive(ctx)
				cancel()
				if err != nil {
					t.Fatalf("trial %d %s: receive callback message: %v", trial, mode, err)
				}
				bodies = append(bodies, string(d.Body))
				d.Ack()
			}
			_ = sub.Shutdown(context.Background())
			for _, bd := range bodies[1:] {
				if bd != bodies[0] {
					t.Fatalf("trial %d %s: callback messages differ:\n%s\n%s", trial, mode, bodies[0], bd)
				}
			}
			m, err := DecodeMessage([]byte(bodies[0]))
			if err != nil || m.ID != CallbackID(gid) {
				t.Fatalf("trial %d %s: callback message %s: %v", trial, mode, bodies[0], err)
			}
			var args struct {
				Own   int            `json:"own"`
				Input []MemberResult `json:"input"`
			}
			if err := json.Unmarshal(m.Args, &args); err != nil || args.Own != 1 || len(args.Input) != n {
				t.Fatalf("trial %d %s: callback args %s: %v", trial, mode, m.Args, err)
			}
			for i, in := range args.Input {
				w := docsWant[i]
				if in.Index != i || in.TaskID != MemberID(gid, i) || in.State != w.State || string(in.Result) != string(w.Result) || in.Error != w.Error {
					t.Fatalf("trial %d %s: input %d is %+v, member ended %s %s %q", trial, mode, i, in, w.State, w.Result, w.Error)
				}
			}
		}
	}
}

// TestChainEventsAnyOrder: a chain step's events, duplicated and
// shuffled, with crashes between applying and moving on, release its
// successor once with the step's result as input, or cancel the rest.
func TestChainEventsAnyOrder(t *testing.T) {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 16))
	for trial := range 15 {
		b := newWFBundle(t)
		ctx := context.Background()
		first := NewID(base)
		second, third := NextID(first), NextID(NextID(first))
		msg := func(id string, args string) string {
			body, err := EncodeMessage(&Message{ID: id, Function: "g", Queue: "default", Args: json.RawMessage(args), TimeoutMS: 1000, MaxAttempts: 1, CreatedAt: base})
			if err != nil {
				t.Fatal(err)
			}
			return string(body)
		}
		err := b.store.CreateSteps(ctx, []*Status{
			{ID: first, Function: "f", Queue: "default", State: Queued, MaxAttempts: 5, CreatedAt: base, Next: second},
			{ID: second, Function: "g", Queue: "default", State: Waiting, MaxAttempts: 1, CreatedAt: base, Previous: first, Next: third, Pending: msg(second, `[7]`)},
			{ID: third, Function: "g", Queue: "default", State: Waiting, MaxAttempts: 1, CreatedAt: base, Previous: second, Pending: msg(third, ``)},
		})
		if err != nil {
			t.Fatal(err)
		}
		h := memberHistory(r, base)
		for _, e := range h {
			e.TaskID = first
		}
		want := applyAll(h)
		b.feed(t, r, shuffledWithDuplicates(r, h), 3)
		st2, err := b.store.Get(ctx, second)
		if err != nil {
			t.Fatal(err)
		}
		st3, err := b.store.Get(ctx, third)
		if err != nil {
			t.Fatal(err)
		}
		sent := memq.Stats(b.queue).Sent
		if want.State != Succeeded {
			if st2.State != Cancelled || st3.State != Cancelled || sent != 0 || !strings.Contains(st2.Error, "previous step "+first) {
				t.Fatalf("trial %d: after a %s step: %s (%q), %s, %d sent", trial, want.State, st2.State, st2.Error, st3.State, sent)
			}
			continue
		}
		if st2.State != Queued || st2.Pending != "" || st3.State != Waiting || sent != 1 {
			t.Fatalf("trial %d: after success: %s pending=%v, %s, %d sent", trial, st2.State, st2.Pending != "", st3.State, sent)
		}
		sub, err := OpenSubscription(ctx, "memq://"+b.queue)
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		d, err := sub.Receive(rctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		d.Ack()
		_ = sub.Shutdown(ctx)
		m, err := DecodeMessage(d.Body)
		if err != nil {
			t.Fatal(err)
		}
		if wantArgs := "[" + string(want.Result) + ",7]"; m.ID != second || string(m.Args) != wantArgs {
			t.Fatalf("trial %d: released %s with %s, want %s with %s", trial, m.ID, m.Args, second, wantArgs)
		}
	}
}

// memberHistory is the events of one task as runners make them: attempts
// that retry, then one outcome, succeeded or failed for good, maybe
// reported by two runners that both held the last delivery. (A task whose
// runners disagree on its outcome, or a cancellation event, can change a
// terminal document later; the group keeps the first outcome it
// recorded: docs/workflows.md.)
func memberHistory(r *rand.Rand, base time.Time) []*Event {
	attempts := 1 + r.IntN(3)
	outcome := []Phase{PhaseSucceeded, PhaseFailed}[r.IntN(2)]
	at := base
	tick := func() time.Time { at = at.Add(time.Duration(1+r.IntN(1000)) * time.Millisecond); return at }
	var out []*Event
	for a := 1; a <= attempts; a++ {
		runners := []string{fmt.Sprintf("r%d", r.IntN(3))}
		if a == attempts && r.IntN(4) == 0 {
			runners = append(runners, "dup")
		}
		for _, rn := range runners {
			start := tick()
			ev := func(p Phase) *Event {
				e := &Event{Function: "f", Queue: "default", MaxAttempts: 5, CreatedAt: base, Attempt: a, Phase: p, Runner: rn, At: tick(), StartedAt: start}
				switch p {
				case PhaseRetrying, PhaseFailed:
					e.Error = fmt.Sprintf("attempt %d failed", a)
				case PhaseSucceeded:
					e.Result = []byte(fmt.Sprintf(`{"attempt":%d}`, a))
				}
				return e
			}
			out = append(out, ev(PhaseStarted))
			if a < attempts {
				out = append(out, ev(PhaseRetrying))
			} else {
				out = append(out, ev(outcome))
			}
		}
	}
	return out
}

func TestCombineInput(t *testing.T) {
	for _, c := range []struct{ own, input, want string }{
		{``, `6`, `6`},
		{`[3]`, `6`, `[6,3]`},
		{`[]`, `{"a":1}`, `[{"a":1}]`},
		{`{"b":2}`, `[1]`, `{"b":2,"input":[1]}`},
		{` null `, ``, `null`},
	} {
		own := json.RawMessage(c.own)
		if c.own == " null " {
			own = nil
		}
		got, err := CombineInput(own, json.RawMessage(c.input))
		if err != nil || string(got) != c.want {
			t.Errorf("CombineInput(%s, %s) = %s, %v; want %s", c.own, c.input, got, err, c.want)
		}
	}
	if _, err := CombineInput(json.RawMessage(`"x"`), json.RawMessage(`1`)); err == nil {
		t.Error("CombineInput of a string's own args: no error")
	}
}

func TestDeriveID(t *testing.T) {
	g := NewID(time.Now())
	seen := map[string]bool{}
	for i := range 10000 {
		id := MemberID(g, i)
		if !ValidID(id) || seen[id] || id[:10] != g[:10] || MemberID(g, i) != id {
			t.Fatalf("member %d of %s: %s (valid %v, seen %v)", i, g, id, ValidID(id), seen[id])
		}
		seen[id] = true
	}
	if CallbackID(g) == NextID(g) || seen[CallbackID(g)] {
		t.Fatal("derived IDs collide")
	}
}
