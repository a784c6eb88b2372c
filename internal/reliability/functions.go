package reliability

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"gocloud.dev/blob"

	"github.com/droverhq/drover/pkg/task"
	"github.com/droverhq/drover/runner"
)

// Names of the functions Register adds.
const (
	FnEcho      = "rel-echo"      // returns its args
	FnSleep     = "rel-sleep"     // {"ms": N}: sleeps N ms (honouring ctx), returns its args
	FnFail      = "rel-fail"      // {"until": k, "always": b, "message": s}: fails while attempt ≤ k, or always
	FnPanic     = "rel-panic"     // panics
	FnBig       = "rel-big"       // {"seed": s, "size": n}: returns BigResult(s, n)
	FnCrashOnce = "rel-crashonce" // like rel-big; CrashAfterOutcome kills the runner after its first outcome
)

// Recorder records one execution of a function: the observable that lets
// the suite count duplicate executions.
type Recorder interface {
	Record(ctx context.Context, taskID string, attempt int, runner string) error
}

// PrefixExecutions is where BlobRecorder writes.
const PrefixExecutions = "executions/"

// BlobRecorder records each execution as an empty blob
// executions/<task>/<attempt>-<runner>-<nanos>, so that processes sharing
// a bucket can be counted together.
type BlobRecorder struct{ Bucket *blob.Bucket }

// Record implements Recorder.
func (r BlobRecorder) Record(ctx context.Context, id string, attempt int, runner string) error {
	key := fmt.Sprintf("%s%s/%d-%s-%d", PrefixExecutions, id, attempt, runner, time.Now().UnixNano())
	if err := r.Bucket.WriteAll(ctx, key, nil, nil); err != nil {
		return fmt.Errorf("record execution %s: %w", key, err)
	}
	return nil
}

// CountBlobExecutions lists what BlobRecorder wrote: executions per task.
func CountBlobExecutions(ctx context.Context, b *blob.Bucket) (map[string]int, error) {
	out := map[string]int{}
	it := b.List(&blob.ListOptions{Prefix: PrefixExecutions})
	for {
		obj, err := it.Next(ctx)
		if err != nil {
			if err == io.EOF {
				return out, nil
			}
			return out, fmt.Errorf("list executions: %w", err)
		}
		id, _, _ := strings.Cut(strings.TrimPrefix(obj.Key, PrefixExecutions), "/")
		out[id]++
	}
}

// ExecutionRunners lists what BlobRecorder wrote: for each task, the
// runner of each execution.
func ExecutionRunners(ctx context.Context, b *blob.Bucket) (map[string][]string, error) {
	out := map[string][]string{}
	it := b.List(&blob.ListOptions{Prefix: PrefixExecutions})
	for {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("list executions: %w", err)
		}
		id, rest, _ := strings.Cut(strings.TrimPrefix(obj.Key, PrefixExecutions), "/")
		_, rest, _ = strings.Cut(rest, "-")                // attempt
		if i := strings.LastIndexByte(rest, '-'); i >= 0 { // nanos
			rest = rest[:i]
		}
		out[id] = append(out[id], rest)
	}
}

// MemRecorder counts executions in memory, for in-process runners.
type MemRecorder struct {
	mu      sync.Mutex
	n       map[string]int
	runners map[string][]string
}

// Record implements Recorder.
func (r *MemRecorder) Record(_ context.Context, id string, _ int, runner string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == nil {
		r.n, r.runners = map[string]int{}, map[string][]string{}
	}
	r.n[id]++
	r.runners[id] = append(r.runners[id], runner)
	return nil
}

// Runners returns, for each task, the runner of each execution.
func (r *MemRecorder) Runners() map[string][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string][]string, len(r.runners))
	for k, v := range r.runners {
		out[k] = append([]string{}, v...)
	}
	return out
}

// Counts returns a copy of the executions per task.
func (r *MemRecorder) Counts() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]int, len(r.n))
	for k, v := range r.n {
		out[k] = v
	}
	return out
}

// BigResult is what rel-big and rel-crashonce return: a JSON document of
// about size bytes determined by seed, so a test can check a stored result
// byte for byte.
func BigResult(seed, size int) []byte {
	unit := "rel-" + strconv.Itoa(seed) + ";"
	var b strings.Builder
	for b.Len() < size {
		b.WriteString(unit)
	}
	out, _ := json.Marshal(map[string]any{"seed": seed, "data": b.String()})
	return out
}

// Register adds the reliability functions to mux; each records its
// execution with rec under the runner's name before it does anything else.
func Register(mux *runner.Mux, rec Recorder, runnerName string) {
	record := func(ctx context.Context, t *task.Task) error {
		// A recording that fails is an attempt that failed: it is retried.
		return rec.Record(context.WithoutCancel(ctx), t.ID, t.Attempt, runnerName)
	}
	mux.HandleFunc(FnEcho, func(ctx context.Context, t *task.Task) (task.Result, error) {
		if err := record(ctx, t); err != nil {
			return nil, err
		}
		return task.Result(t.Args), nil
	})
	mux.HandleFunc(FnSleep, func(ctx context.Context, t *task.Task) (task.Result, error) {
		if err := record(ctx, t); err != nil {
			return nil, err
		}
		var a struct {
			MS int `json:"ms"`
		}
		if err := json.Unmarshal(t.Args, &a); err != nil {
			return nil, fmt.Errorf("rel-sleep args: %v: %w", err, task.ErrPermanent)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("rel-sleep %s: %w", t.ID, ctx.Err())
		case <-time.After(time.Duration(a.MS) * time.Millisecond):
		}
		return task.Result(t.Args), nil
	})
	mux.HandleFunc(FnFail, func(ctx context.Context, t *task.Task) (task.Result, error) {
		if err := record(ctx, t); err != nil {
			return nil, err
		}
		var a struct {
			Until   int    `json:"until"`
			Always  bool   `json:"always"`
			Message string `json:"message"`
		}
		if err := json.Unmarshal(t.Args, &a); err != nil {
			return nil, fmt.Errorf("rel-fail args: %v: %w", err, task.ErrPermanent)
		}
		if a.Always || t.Attempt <= a.Until {
			return nil, fmt.Errorf("%s", a.Message)
		}
		return task.Result(t.Args), nil
	})
	mux.HandleFunc(FnPanic, func(ctx context.Context, t *task.Task) (task.Result, error) {
		if err := record(ctx, t); err != nil {
			return nil, err
		}
		panic("rel-panic: deliberate panic in " + t.ID)
	})
	big := func(ctx context.Context, t *task.Task) (task.Result, error) {
		if err := record(ctx, t); err != nil {
			return nil, err
		}
		var a struct{ Seed, Size int }
		if err := json.Unmarshal(t.Args, &a); err != nil {
			return nil, fmt.Errorf("%s args: %v: %w", t.Function, err, task.ErrPermanent)
		}
		return task.Result(BigResult(a.Seed, a.Size)), nil
	}
	mux.HandleFunc(FnBig, big)
	mux.HandleFunc(FnCrashOnce, big)
}
