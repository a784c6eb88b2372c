package runner

import (
	"bytes"
	"cmp"
	"container/heap"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/droverhq/drover/pkg/task"
)

// maxSleep bounds the sleep function's ms argument: no task may run longer.
const maxSleep = task.MaxTimeout

// RegisterBuiltins registers the built-in functions on m. Those that read or
// write blobs use bucket.
//
//   - echo: returns its args (JSON null for none).
//   - sleep {"ms": N}: sleeps N ms (at most 12 h) → {"slept_ms": N}.
//   - sha256 {"blob": "key"}: hashes the blob; any other args hash the
//     raw args → {"sha256": "<hex>", "bytes": N}.
//   - fail {"message": "...", "times": N, "permanent": bool}: fails, or with
//     times only while the attempt is at most N → {"attempt": N}.
//   - sort {"values": [...]} → {"values": [...]}, or {"blob": "in", "out":
//     "out"} for a JSON array in the bucket → {"out": "out", "count": N}.
//   - merge {"lists": [[...], ...]} → {"values": [...]}, or {"blobs": [...],
//     "out": "out"} → {"out": "out", "count": N}: a k-way merge of sorted
//     lists, which with sort makes a chunked merge sort. As a group's
//     callback it takes the sort members' results from "input" instead.
//   - mul [a, b, ...] → the product; safediv [a, b] → a / b, failing for
//     good when b is 0: the two steps of the chain example.
//   - exec {"bundle": "key.tar.gz", "argv": [...], "env": {...}, "timeout":
//     "30s", "network": false}: runs the executable start from a bundle in
//     the bucket, with no shell, isolated in a sandbox (package
//     runner/sandbox; docs/security.md) with its own work dir; logs go to
//     logs/{id}/{attempt}/ and its result/ dir to
//     results/{id}/{attempt}/result.tar.gz. It refuses to run where the
//     machine cannot isolate bundles unless DROVER_EXEC_UNSAFE=allow
//     (ExecConfigFromEnv).
//
// Each decodes its args strictly: unknown fields and values of the wrong
// type fail the task at once with an error wrapping task.ErrPermanent, as
// do missing blobs and unsafe bundles. All return when ctx is done.
func RegisterBuiltins(m *Mux, bucket *blob.Bucket) {
	m.HandleFunc("echo", echo)
	m.HandleFunc("sleep", sleep)
	m.HandleFunc("sha256", func(ctx context.Context, t *task.Task) (task.Result, error) {
		return sha256Of(ctx, bucket, t)
	})
	m.HandleFunc("fail", fail)
	m.HandleFunc("sort", func(ctx context.Context, t *task.Task) (task.Result, error) {
		return sortNumbers(ctx, bucket, t)
	})
	m.HandleFunc("merge", func(ctx context.Context, t *task.Task) (task.Result, error) {
		return mergeNumbers(ctx, bucket, t)
	})
	m.HandleFunc("mul", mul)
	m.HandleFunc("safediv", safediv)
	m.Handle("exec", newExec(bucket, ExecConfigFromEnv()))
}

// decodeArgs decodes t.Args strictly into v. Empty or null args leave v
// unchanged. The error wraps task.ErrPermanent.
func decodeArgs(t *task.Task, v any) error {
	args := bytes.TrimSpace(t.Args)
	if len(args) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(args))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badArgs(t, "%v", err)
	}
	if dec.More() {
		return badArgs(t, "trailing data after the JSON value")
	}
	return nil
}

// badArgs returns a permanent error about t's args.
func badArgs(t *task.Task, format string, a ...any) error {
	return fmt.Errorf("%s %s attempt %d: bad args: %s: %w",
		t.Function, t.ID, t.Attempt, fmt.Sprintf(format, a...), task.ErrPermanent)
}

// echo returns its args unchanged, or JSON null for none.
func echo(_ context.Context, t *task.Task) (task.Result, error) {
	args := bytes.TrimSpace(t.Args)
	if len(args) == 0 {
		return task.Result("null"), nil
	}
	if !json.Valid(args) {
		return nil, badArgs(t, "not valid JSON")
	}
	return task.Result(slices.Clone(args)), nil
}

// sleep waits {"ms": N} milliseconds or until ctx is done.
func sleep(ctx context.Context, t *task.Task) (task.Result, error) {
	var args struct {
		MS int64 `json:"ms"`
	}
	if err := decodeArgs(t, &args); err != nil {
		return nil, err
	}
	if args.MS < 0 || args.MS > maxSleep.Milliseconds() {
		return nil, badArgs(t, "ms %d out of range [0, %d]", args.MS, maxSleep.Milliseconds())
	}
	timer := time.NewTimer(time.Duration(args.MS) * time.Millisecond)
	defer timer.Stop()
	select {
	case <-timer.C:
		return task.JSONResult(map[string]int64{"slept_ms": args.MS})
	case <-ctx.Done():
		return nil, fmt.Errorf("sleep %s attempt %d: %w", t.ID, t.Attempt, ctx.Err())
	}
}

// sha256Of hashes the blob named by {"blob": "key"}, or else the raw args.
func sha256Of(ctx context.Context, bucket *blob.Bucket, t *task.Task) (task.Result, error) {
	var args struct {
		Blob *string `json:"blob"`
	}
	h := sha256.New()
	var n int64
	if decodeArgs(t, &args) == nil && args.Blob != nil {
		if *args.Blob == "" {
			return nil, badArgs(t, "blob: empty key")
		}
		r, err := openBlob(ctx, bucket, t, *args.Blob)
		if err != nil {
			return nil, err
		}
		defer r.Close()
		if n, err = io.Copy(h, ctxReader{ctx, r}); err != nil {
			return nil, fmt.Errorf("sha256 %s attempt %d: read blob %q: %w", t.ID, t.Attempt, *args.Blob, err)
		}
	} else {
		h.Write(t.Args)
		n = int64(len(t.Args))
	}
	return task.JSONResult(struct {
		SHA256 string `json:"sha256"`
		Bytes  int64  `json:"bytes"`
	}{hex.EncodeToString(h.Sum(nil)), n})
}

// fail fails as asked: always, or while t.Attempt <= times.
func fail(_ context.Context, t *task.Task) (task.Result, error) {
	var args struct {
		Message   string `json:"message"`
		Times     *int   `json:"times"`
		Permanent bool   `json:"permanent"`
	}
	if err := decodeArgs(t, &args); err != nil {
		return nil, err
	}
	if args.Times != nil && *args.Times < 0 {
		return nil, badArgs(t, "times %d is negative", *args.Times)
	}
	if args.Times != nil && t.Attempt > *args.Times {
		return task.JSONResult(map[string]int{"attempt": t.Attempt})
	}
	if args.Message == "" {
		args.Message = "fail: requested failure"
	}
	if args.Permanent {
		return nil, fmt.Errorf("%s: %w", args.Message, task.ErrPermanent)
	}
	return nil, errors.New(args.Message)
}

// sortNumbers sorts {"values": [...]} inline, or the JSON array in blob
// "blob" into blob "out".
func sortNumbers(ctx context.Context, bucket *blob.Bucket, t *task.Task) (task.Result, error) {
	var args struct {
		Values []float64 `json:"values"`
		Blob   string    `json:"blob"`
		Out    string    `json:"out"`
	}
	if err := decodeArgs(t, &args); err != nil {
		return nil, err
	}
	switch {
	case args.Blob != "" && args.Values != nil:
		return nil, badArgs(t, "values and blob are mutually exclusive")
	case args.Blob == "" && args.Out != "":
		return nil, badArgs(t, "out needs blob")
	case args.Blob != "" && args.Out == "":
		return nil, badArgs(t, "blob needs out")
	case args.Blob == "":
		if args.Values == nil {
			return nil, badArgs(t, "values or blob is required")
		}
		slices.Sort(args.Values)
		return task.JSONResult(map[string][]float64{"values": args.Values})
	}
	values, err := readNumbers(ctx, bucket, t, args.Blob)
	if err != nil {
		return nil, err
	}
	slices.Sort(values)
	if err := writeNumbers(ctx, bucket, t, args.Out, values); err != nil {
		return nil, err
	}
	return task.JSONResult(struct {
		Out   string `json:"out"`
		Count int    `json:"count"`
	}{args.Out, len(values)})
}

// mergeNumbers merges sorted lists, inline {"lists": [[...], ...]} or from
// blobs {"blobs": [...], "out": "key"}.
func mergeNumbers(ctx context.Context, bucket *blob.Bucket, t *task.Task) (task.Result, error) {
	var args struct {
		Lists [][]float64 `json:"lists"`
		Blobs []string    `json:"blobs"`
		Out   string      `json:"out"`
		// Input is a group's results, when merge is its callback: sort
		// members' results name their output blobs or hold their values.
		Input []task.MemberResult `json:"input"`
	}
	if err := decodeArgs(t, &args); err != nil {
		return nil, err
	}
	if args.Input != nil {
		if args.Lists != nil || args.Blobs != nil {
			return nil, badArgs(t, "input (a group's results) excludes lists and blobs")
		}
		for i, r := range args.Input {
			if r.State != task.Succeeded {
				return nil, badArgs(t, "input[%d]: member %s is %s, not succeeded", i, r.TaskID, r.State)
			}
			res := []byte(r.Result)
			if r.ResultRef != "" {
				rd, err := openBlob(ctx, bucket, t, r.ResultRef)
				if err != nil {
					return nil, err
				}
				res, err = io.ReadAll(rd)
				rd.Close()
				if err != nil {
					return nil, fmt.Errorf("merge %s attempt %d: read %q: %w", t.ID, t.Attempt, r.ResultRef, err)
				}
			}
			var sorted struct {
				Out    string    `json:"out"`
				Count  int       `json:"count"`
				Values []float64 `json:"values"`
			}
			if err := json.Unmarshal(res, &sorted); err != nil {
				return nil, badArgs(t, "input[%d]: result of %s is not a sort result: %v", i, r.TaskID, err)
			}
			if sorted.Out != "" {
				args.Blobs = append(args.Blobs, sorted.Out)
			} else {
				args.Lists = append(args.Lists, sorted.Values)
			}
		}
		if args.Blobs != nil && args.Lists != nil {
			return nil, badArgs(t, "input mixes results in blobs and inline values")
		}
	}
	inline := args.Blobs == nil
	switch {
	case !inline && args.Lists != nil:
		return nil, badArgs(t, "lists and blobs are mutually exclusive")
	case inline && args.Out != "":
		return nil, badArgs(t, "out needs blobs")
	case !inline && args.Out == "":
		return nil, badArgs(t, "blobs needs out")
	case inline && args.Lists == nil:
		return nil, badArgs(t, "lists or blobs is required")
	}
	lists := args.Lists
	for i, key := range args.Blobs {
		if key == "" {
			return nil, badArgs(t, "blobs[%d]: empty key", i)
		}
		values, err := readNumbers(ctx, bucket, t, key)
		if err != nil {
			return nil, err
		}
		lists = append(lists, values)
	}
	for i, l := range lists {
		if !slices.IsSorted(l) {
			if inline {
				return nil, badArgs(t, "lists[%d] is not sorted", i)
			}
			return nil, fmt.Errorf("merge %s attempt %d: blob %q is not sorted: %w",
				t.ID, t.Attempt, args.Blobs[i], task.ErrPermanent)
		}
	}
	merged, err := kMerge(ctx, lists)
	if err != nil {
		return nil, fmt.Errorf("merge %s attempt %d: %w", t.ID, t.Attempt, err)
	}
	if inline {
		return task.JSONResult(map[string][]float64{"values": merged})
	}
	if err := writeNumbers(ctx, bucket, t, args.Out, merged); err != nil {
		return nil, err
	}
	return task.JSONResult(struct {
		Out   string `json:"out"`
		Count int    `json:"count"`
	}{args.Out, len(merged)})
}

// kMerge merges sorted lists with a heap of list heads, checking ctx now
// and then.
func kMerge(ctx context.Context, lists [][]float64) ([]float64, error) {
	total := 0
	h := make(mergeHeap, 0, len(lists))
	for _, l := range lists {
		total += len(l)
		if len(l) > 0 {
			h = append(h, l)
		}
	}
	heap.Init(&h)
	out := make([]float64, 0, total)
	for len(h) > 0 {
		if len(out)%4096 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		out = append(out, h[0][0])
		if h[0] = h[0][1:]; len(h[0]) == 0 {
			heap.Pop(&h)
		} else {
			heap.Fix(&h, 0)
		}
	}
	return out, nil
}

// mergeHeap is a min-heap of non-empty sorted lists, by their heads.
type mergeHeap [][]float64

func (h mergeHeap) Len() int           { return len(h) }
func (h mergeHeap) Less(i, j int) bool { return cmp.Less(h[i][0], h[j][0]) }
func (h mergeHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *mergeHeap) Push(x any)        { *h = append(*h, x.([]float64)) }
func (h *mergeHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// openBlob opens key for reading. A missing blob is a permanent error.
func openBlob(ctx context.Context, bucket *blob.Bucket, t *task.Task, key string) (*blob.Reader, error) {
	r, err := bucket.NewReader(ctx, key, nil)
	if gcerrors.Code(err) == gcerrors.NotFound {
		return nil, fmt.Errorf("%s %s attempt %d: blob %q not found: %w", t.Function, t.ID, t.Attempt, key, task.ErrPermanent)
	}
	if err != nil {
		return nil, fmt.Errorf("%s %s attempt %d: open blob %q: %w", t.Function, t.ID, t.Attempt, key, err)
	}
	return r, nil
}

// readNumbers reads the JSON array of numbers in blob key.
func readNumbers(ctx context.Context, bucket *blob.Bucket, t *task.Task, key string) ([]float64, error) {
	r, err := openBlob(ctx, bucket, t, key)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var values []float64
	if err := json.NewDecoder(r).Decode(&values); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s %s attempt %d: read blob %q: %w", t.Function, t.ID, t.Attempt, key, ctx.Err())
		}
		return nil, fmt.Errorf("%s %s attempt %d: blob %q is not a JSON array of numbers: %v: %w",
			t.Function, t.ID, t.Attempt, key, err, task.ErrPermanent)
	}
	if values == nil {
		values = []float64{}
	}
	return values, nil
}

// writeNumbers writes values as a JSON array to blob key.
func writeNumbers(ctx context.Context, bucket *blob.Bucket, t *task.Task, key string, values []float64) error {
	err := writeBlob(ctx, bucket, key, "application/json", nil, func(w io.Writer) error {
		return json.NewEncoder(w).Encode(values)
	})
	if err != nil {
		return fmt.Errorf("%s %s attempt %d: write blob %q: %w", t.Function, t.ID, t.Attempt, key, err)
	}
	return nil
}

// writeBlob writes blob key with what write writes. If write fails, the
// blob is left as it was.
func writeBlob(ctx context.Context, bucket *blob.Bucket, key, contentType string, metadata map[string]string, write func(io.Writer) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := bucket.NewWriter(ctx, key, &blob.WriterOptions{ContentType: contentType, Metadata: metadata})
	if err != nil {
		return err
	}
	if err := write(w); err != nil {
		cancel() // abort: gocloud discards a write whose context is done
		w.Close()
		return err
	}
	return w.Close()
}
