// Package tracecheck checks, in tests, that one task's spans form the
// trace Drover promises: submit → run (each attempt) → collect, with the
// function's own spans under its run. It is a test harness: never linked
// into drover or a bootstrap.
package tracecheck

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/droverhq/drover/client"
	"github.com/droverhq/drover/pkg/task"
	"github.com/droverhq/drover/runner"
)

// Want is what a task's trace must hold.
type Want struct {
	// Parent is the span the submit request was made under (the
	// client's); its trace is the task's.
	Parent trace.SpanContext
	TaskID string
	// Function is the task's function; Attempts the runs it took.
	Function string
	Attempts int
	// Final is the phase of the terminal event ("succeeded").
	Final string
	// UserSpan, if set, is the name of a span the function starts from
	// its context, which must be a child of its run.
	UserSpan string
}

// Check reports what is wrong with the task's spans among spans, or nil.
func Check(spans []sdktrace.ReadOnlySpan, w Want) error {
	var submit, user []sdktrace.ReadOnlySpan
	var runs, collects []sdktrace.ReadOnlySpan
	for _, s := range spans {
		if s.SpanContext().TraceID() != w.Parent.TraceID() {
			continue
		}
		if s.Name() == w.UserSpan {
			user = append(user, s)
			continue
		}
		if attr(s, "drover.task_id") != w.TaskID {
			continue
		}
		switch {
		case s.Name() == "submit "+w.Function:
			submit = append(submit, s)
		case s.Name() == "run "+w.Function:
			runs = append(runs, s)
		case strings.HasPrefix(s.Name(), "collect "):
			collects = append(collects, s)
		}
	}
	if len(submit) != 1 {
		return fmt.Errorf("task %s: %d submit spans in trace %s, want 1 (of %d spans: %s)", w.TaskID, len(submit), w.Parent.TraceID(), len(spans), names(spans))
	}
	sub := submit[0]
	if sub.Parent().SpanID() != w.Parent.SpanID() {
		return fmt.Errorf("submit span's parent is %s, want the request's %s", sub.Parent().SpanID(), w.Parent.SpanID())
	}
	if sub.SpanKind() != trace.SpanKindProducer {
		return fmt.Errorf("submit span is a %s span", sub.SpanKind())
	}
	if len(runs) != w.Attempts {
		return fmt.Errorf("task %s: %d run spans, want %d (spans: %s)", w.TaskID, len(runs), w.Attempts, names(spans))
	}
	var attempts []int64
	for _, r := range runs {
		if r.Parent().SpanID() != sub.SpanContext().SpanID() {
			return fmt.Errorf("run span's parent is %s, want the submit span %s", r.Parent().SpanID(), sub.SpanContext().SpanID())
		}
		if !r.Parent().IsRemote() {
			return fmt.Errorf("run span's parent is not remote: it did not come through the message")
		}
		attempts = append(attempts, intAttr(r, "drover.attempt"))
	}
	slices.Sort(attempts)
	for i, a := range attempts {
		if a != int64(i+1) {
			return fmt.Errorf("run spans' attempts are %v, want 1..%d", attempts, w.Attempts)
		}
	}
	isRun := func(id trace.SpanID) bool {
		return slices.ContainsFunc(runs, func(r sdktrace.ReadOnlySpan) bool { return r.SpanContext().SpanID() == id })
	}
	final := false
	for _, c := range collects {
		if !isRun(c.Parent().SpanID()) {
			return fmt.Errorf("%s span's parent %s is none of the run spans", c.Name(), c.Parent().SpanID())
		}
		if c.Name() == "collect "+w.Final {
			final = true
		}
	}
	if !final {
		return fmt.Errorf("task %s: no collect %s span (collect spans: %s)", w.TaskID, w.Final, names(collects))
	}
	if w.UserSpan != "" {
		if len(user) != w.Attempts {
			return fmt.Errorf("%d %q spans, want %d", len(user), w.UserSpan, w.Attempts)
		}
		for _, u := range user {
			if !isRun(u.Parent().SpanID()) {
				return fmt.Errorf("the function's span %q is not a child of a run span", w.UserSpan)
			}
		}
	}
	return nil
}

func attr(s sdktrace.ReadOnlySpan, key string) string {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key && kv.Value.Type() == attribute.STRING {
			return kv.Value.AsString()
		}
	}
	return ""
}

func intAttr(s sdktrace.ReadOnlySpan, key string) int64 {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key && kv.Value.Type() == attribute.INT64 {
			return kv.Value.AsInt64()
		}
	}
	return -1
}

func names(spans []sdktrace.ReadOnlySpan) string {
	var b strings.Builder
	for i, s := range spans {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(s.Name())
	}
	return b.String()
}

// Register adds "traced": it starts a span of its own from its
// context (as a user's function does) and fails its first attempt when
// its args are {"fail_first": true}.
func Register(mux *runner.Mux) {
	mux.HandleFunc("traced", func(ctx context.Context, t *task.Task) (task.Result, error) {
		_, span := trace.SpanFromContext(ctx).TracerProvider().Tracer("user").Start(ctx, "user work")
		defer span.End()
		var args struct {
			FailFirst bool `json:"fail_first"`
		}
		_ = json.Unmarshal(t.Args, &args)
		if args.FailFirst && t.Attempt == 1 {
			return nil, errors.New("first attempt fails")
		}
		return task.Result(`{"ok":true}`), nil
	})
}

// Run submits a task that succeeds at once and one that
// succeeds at its second attempt, each under a client span of its own,
// and checks their traces.
func Run(t *testing.T, c *client.Client, tp trace.TracerProvider, rec *tracetest.SpanRecorder) {
	t.Helper()
	ctx := context.Background()
	cases := []struct {
		args     string
		attempts int
	}{{`{}`, 1}, {`{"fail_first":true}`, 2}}
	wants := make([]Want, len(cases))
	for i, tc := range cases {
		sctx, span := tp.Tracer("test client").Start(ctx, "client submit")
		st, err := c.Submit(sctx, task.Spec{Function: "traced", Args: json.RawMessage(tc.args)})
		span.End()
		if err != nil {
			t.Fatalf("submit: %v", err)
		}
		wants[i] = Want{Parent: span.SpanContext(), TaskID: st.ID, Function: "traced", Attempts: tc.attempts,
			Final: "succeeded", UserSpan: "user work"}
	}
	for _, w := range wants {
		wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		st, err := c.Wait(wctx, w.TaskID, client.WaitOptions{PollWait: 5 * time.Second, MinInterval: 100 * time.Millisecond})
		cancel()
		if err != nil {
			t.Fatalf("wait %s: %v", w.TaskID, err)
		}
		if st.State != task.Succeeded || st.Attempt != w.Attempts {
			t.Fatalf("task %s ended %s at attempt %d", w.TaskID, st.State, st.Attempt)
		}
	}
	// The collector ends its span once the write is done, which is
	// after a client can read the status: wait for the spans.
	deadline := time.Now().Add(time.Minute)
	for _, w := range wants {
		for {
			err := Check(rec.Ended(), w)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal(err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}
