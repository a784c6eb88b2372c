package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"gocloud.dev/blob/memblob"

	"github.com/droverhq/drover/client"
	"github.com/droverhq/drover/functions/collect/collector"
	"github.com/droverhq/drover/functions/dispatch/api"
	"github.com/droverhq/drover/internal/embedded"
	"github.com/droverhq/drover/pkg/memq"
	"github.com/droverhq/drover/pkg/task"
	"github.com/droverhq/drover/runner"
)

// routingStack is the embedded default with declared queues and runners
// of different traits: dispatch, a collector and runners sharing one set
// of in-process resources.
type routingStack struct {
	t      *testing.T
	ctx    context.Context
	c      *client.Client
	res    *task.Resources
	topics task.QueueURLs
	wg     sync.WaitGroup
}

func setupRouting(t *testing.T, queues ...string) *routingStack {
	t.Helper()
	n := queueSeq.Add(1)
	base := fmt.Sprintf("memq://routing-%d-tasks", n)
	events := fmt.Sprintf("routing-%d-events", n)
	ctx, cancel := context.WithCancel(context.Background())
	s := &routingStack{t: t, ctx: ctx, res: &task.Resources{}, topics: task.QueueURLs{}}
	for _, q := range queues {
		s.topics[q] = embedded.QueueURL(base, q)
	}
	var err error
	if s.res.Queues, err = task.OpenQueues(ctx, s.topics); err != nil {
		t.Fatal(err)
	}
	if s.res.Events, err = task.OpenTopic(ctx, "memq://"+events); err != nil {
		t.Fatal(err)
	}
	s.res.Archive = task.NewArchive(memblob.OpenBucket(nil))
	if s.res.Store, err = task.OpenStore(ctx, fmt.Sprintf("mem://routing-%d/id", n)); err != nil {
		t.Fatal(err)
	}
	col := collector.New(s.res.Store, s.res.Archive, nil)
	col.Workflow.Queues = s.res.Queues
	s.wg.Go(func() { _ = col.Run(ctx, task.URLOpener("memq://"+events+"?visibility=10s")) })
	srv := httptest.NewServer(api.New(s.res.Queues.Default(), s.res.Archive, s.res.Store, nil, api.Config{Queues: s.res.Queues}))
	s.c = client.New(srv.URL)
	t.Cleanup(func() {
		srv.Close()
		cancel()
		s.wg.Wait()
		s.res.Close(nil)
		for _, q := range queues {
			memq.Delete(strings.TrimPrefix(s.topics[q], "memq://"))
		}
		memq.Delete(events)
	})
	return s
}

// startRunner starts a runner named name serving queues with traits
// (DROVER_TRAITS form) and the built-ins.
func (s *routingStack) startRunner(name, traits string, queues ...string) {
	s.t.Helper()
	tr, err := task.ParseTraits(traits)
	if err != nil {
		s.t.Fatal(err)
	}
	mux := runner.NewMux()
	runner.RegisterBuiltins(mux, s.res.Archive.Bucket())
	r := runner.New(mux, s.res.Events, s.res.Archive, s.res.Store, nil, runner.Config{
		Name: name, Concurrency: 4, Heartbeat: 200 * time.Millisecond, Grace: time.Second,
		Traits: tr, HandBackMax: 2 * time.Second,
	})
	var qs []runner.Queue
	for _, q := range queues {
		qs = append(qs, runner.Queue{Name: q, Weight: 1, Open: task.URLOpener(s.topics[q] + "?visibility=10s")})
	}
	s.wg.Go(func() { _ = r.RunQueues(s.ctx, qs) })
}

// TestRoutingEmbedded is the first acceptance: three runners
// (gpu, python=3.11, plain) and 300 tasks mixed across requirements:
// each ran on a runner whose traits satisfy it, none failed; a task that
// requires python>=3.12 waits, saying why, and runs once a runner that
// has it starts.
func TestRoutingEmbedded(t *testing.T) {
	s := setupRouting(t, "default", "gpu")
	s.startRunner("gpu-box", "gpu,cuda=12.4", "gpu", "default")
	s.startRunner("py311", "python=3.11", "default")
	s.startRunner("plain", "", "default")
	runnerTraits := map[string]task.Traits{
		"gpu-box": {"gpu": "", "cuda": "12.4"}, "py311": {"python": "3.11"}, "plain": {},
	}
	ctx := context.Background()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		rs, err := s.c.Runners(ctx)
		if err == nil && len(rs) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("runners did not all announce themselves: %v %+v", err, rs)
		}
		time.Sleep(100 * time.Millisecond)
	}

	var specs []task.Spec
	for i := range 300 {
		sp := task.Spec{Function: "echo", Args: json.RawMessage(fmt.Sprint(i))}
		switch i % 4 {
		case 0:
			sp.Queue, sp.Requires = "gpu", task.Requires{"gpu": ""}
		case 1:
			sp.Requires = task.Requires{"python": ">=3.10"}
		case 2:
			sp.Requires = task.Requires{"cuda": ">=12", "gpu": ""}
		}
		specs = append(specs, sp)
	}
	var ids []string
	for lo := 0; lo < len(specs); lo += 100 {
		sts, err := s.c.SubmitBatch(ctx, specs[lo:lo+100])
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range sts {
			ids = append(ids, st.ID)
		}
	}
	late, err := s.c.Submit(ctx, task.Spec{Function: "echo", Args: json.RawMessage(`"late"`), Requires: task.Requires{"python": ">=3.12"}})
	if err != nil {
		t.Fatal(err)
	}
	if want := "no live runner with python>=3.12 on queue default"; late.Waiting != want {
		t.Errorf("submitted python>=3.12 task: waiting %q, want %q", late.Waiting, want)
	}

	for i, id := range ids {
		wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		st, err := s.c.Wait(wctx, id, client.WaitOptions{})
		cancel()
		if err != nil {
			t.Fatalf("task %d: %v", i, err)
		}
		if st.State != task.Succeeded || st.Attempt != 1 {
			t.Errorf("task %d (%v): %s attempt %d error %q, want succeeded at attempt 1", i, specs[i].Requires, st.State, st.Attempt, st.Error)
			continue
		}
		tr, ok := runnerTraits[st.Runner]
		if !ok {
			t.Errorf("task %d ran on %q, not one of the runners", i, st.Runner)
			continue
		}
		if _, unmet := specs[i].Requires.Match(tr); unmet != "" {
			t.Errorf("task %d requires %v but ran on %s, which lacks %s", i, specs[i].Requires, st.Runner, unmet)
		}
		for name := range specs[i].Requires {
			if st.Matched[name] != tr[name] {
				t.Errorf("task %d: matched %v, want %s=%q of %s", i, st.Matched, name, tr[name], st.Runner)
			}
		}
	}

	st, err := s.c.Get(ctx, late.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != task.Queued || st.Attempt != 0 || !strings.Contains(st.Waiting, "python>=3.12") {
		t.Errorf("python>=3.12 task before its runner: %s attempt %d waiting %q, want queued, no attempt, waiting for python>=3.12", st.State, st.Attempt, st.Waiting)
	}
	s.startRunner("py312", "python=3.12.1", "default")
	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	st, err = s.c.Wait(wctx, late.ID, client.WaitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st.State != task.Succeeded || st.Runner != "py312" || st.Attempt != 1 || st.Matched["python"] != "3.12.1" || st.Waiting != "" {
		t.Errorf("python>=3.12 task: %s on %q attempt %d matched %v waiting %q, want succeeded on py312 at attempt 1", st.State, st.Runner, st.Attempt, st.Matched, st.Waiting)
	}
}
