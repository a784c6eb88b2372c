package runner

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/memblob"

	"github.com/droverhq/drover/pkg/task"
)

// setupBuiltins returns a mux with the built-ins registered over a fresh
// in-memory bucket.
func setupBuiltins(t *testing.T) (*Mux, *blob.Bucket) {
	t.Helper()
	bucket := memblob.OpenBucket(nil)
	t.Cleanup(func() { bucket.Close() })
	m := NewMux()
	RegisterBuiltins(m, bucket)
	return m, bucket
}

// call runs function fn of m with args at attempt.
func call(ctx context.Context, t *testing.T, m *Mux, fn, args string, attempt int) (task.Result, error) {
	t.Helper()
	h, ok := m.Handler(fn)
	if !ok {
		t.Fatalf("function %q not registered", fn)
	}
	var raw json.RawMessage
	if args != "" {
		raw = json.RawMessage(args)
	}
	return h.Handle(ctx, &task.Task{ID: "T1", Function: fn, Args: raw, Attempt: attempt})
}

func putBlob(t *testing.T, bucket *blob.Bucket, key string, data []byte) {
	t.Helper()
	if err := bucket.WriteAll(context.Background(), key, data, nil); err != nil {
		t.Fatal(err)
	}
}

func getBlob(t *testing.T, bucket *blob.Bucket, key string) []byte {
	t.Helper()
	b, err := bucket.ReadAll(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sameJSON reports whether a and b hold equal JSON values.
func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatalf("bad JSON %q: %v", a, err)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatalf("bad JSON %q: %v", b, err)
	}
	ja, _ := json.Marshal(va)
	jb, _ := json.Marshal(vb)
	return string(ja) == string(jb)
}

func TestRegisterBuiltins(t *testing.T) {
	m, _ := setupBuiltins(t)
	want := "echo exec fail merge mul safediv sha256 sleep sort"
	if got := strings.Join(m.Functions(), " "); got != want {
		t.Errorf("Functions() = %q, want %q", got, want)
	}
}

func TestBuiltins(t *testing.T) {
	sum := func(s string) string {
		h := sha256.Sum256([]byte(s))
		return hex.EncodeToString(h[:])
	}
	tests := []struct {
		name    string
		fn      string
		args    string
		attempt int
		blobs   map[string]string // put before the call
		want    string            // result JSON, when no error is wanted
		wantErr string            // substring of the error
		perm    bool              // error must wrap task.ErrPermanent
		wantOut map[string]string // blobs expected after the call
	}{
		{name: "echo object", fn: "echo", args: `{"a":[1,2,{"b":null}]}`, want: `{"a":[1,2,{"b":null}]}`},
		{name: "echo string", fn: "echo", args: `"hi"`, want: `"hi"`},
		{name: "echo none", fn: "echo", want: `null`},
		{name: "echo invalid", fn: "echo", args: `{"a":`, wantErr: "not valid JSON", perm: true},

		{name: "sleep", fn: "sleep", args: `{"ms": 5}`, want: `{"slept_ms":5}`},
		{name: "sleep zero", fn: "sleep", args: `{"ms": 0}`, want: `{"slept_ms":0}`},
		{name: "sleep negative", fn: "sleep", args: `{"ms": -1}`, wantErr: "ms -1 out of range", perm: true},
		{name: "sleep too long", fn: "sleep", args: `{"ms": 43200001}`, wantErr: "ms 43200001 out of range", perm: true},
		{name: "sleep unknown field", fn: "sleep", args: `{"ms": 1, "s": 2}`, wantErr: `unknown field "s"`, perm: true},
		{name: "sleep wrong type", fn: "sleep", args: `{"ms": "5"}`, wantErr: "ms", perm: true},
		{name: "sleep trailing data", fn: "sleep", args: `{"ms": 1} {}`, wantErr: "trailing data", perm: true},

		{name: "sha256 of blob", fn: "sha256", args: `{"blob": "in/a"}`, blobs: map[string]string{"in/a": "hello"},
			want: `{"sha256":"` + sum("hello") + `","bytes":5}`},
		{name: "sha256 of args", fn: "sha256", args: `{"x": 1}`, want: `{"sha256":"` + sum(`{"x": 1}`) + `","bytes":8}`},
		{name: "sha256 of blob and more", fn: "sha256", args: `{"blob":"k","x":1}`,
			want: `{"sha256":"` + sum(`{"blob":"k","x":1}`) + `","bytes":18}`},
		{name: "sha256 of nothing", fn: "sha256", want: `{"sha256":"` + sum("") + `","bytes":0}`},
		{name: "sha256 missing blob", fn: "sha256", args: `{"blob": "nope"}`, wantErr: `blob "nope" not found`, perm: true},
		{name: "sha256 empty key", fn: "sha256", args: `{"blob": ""}`, wantErr: "blob: empty key", perm: true},

		{name: "fail default", fn: "fail", attempt: 1, wantErr: "fail: requested failure"},
		{name: "fail message", fn: "fail", args: `{"message": "boom"}`, attempt: 7, wantErr: "boom"},
		{name: "fail permanent", fn: "fail", args: `{"message": "boom", "permanent": true}`, attempt: 1, wantErr: "boom", perm: true},
		{name: "fail times first", fn: "fail", args: `{"times": 2}`, attempt: 1, wantErr: "requested failure"},
		{name: "fail times last", fn: "fail", args: `{"times": 2}`, attempt: 2, wantErr: "requested failure"},
		{name: "fail times then succeeds", fn: "fail", args: `{"times": 2}`, attempt: 3, want: `{"attempt":3}`},
		{name: "fail times zero", fn: "fail", args: `{"times": 0}`, attempt: 1, want: `{"attempt":1}`},
		{name: "fail times negative", fn: "fail", args: `{"times": -1}`, attempt: 1, wantErr: "times -1 is negative", perm: true},
		{name: "fail bad field", fn: "fail", args: `{"tims": 1}`, attempt: 1, wantErr: `unknown field "tims"`, perm: true},

		{name: "sort values", fn: "sort", args: `{"values": [3, -1.5, 2, 2, 0]}`, want: `{"values":[-1.5,0,2,2,3]}`},
		{name: "sort empty", fn: "sort", args: `{"values": []}`, want: `{"values":[]}`},
		{name: "sort blob", fn: "sort", args: `{"blob": "in", "out": "out"}`, blobs: map[string]string{"in": `[5,1,4]`},
			want: `{"out":"out","count":3}`, wantOut: map[string]string{"out": `[1,4,5]`}},
		{name: "sort missing blob", fn: "sort", args: `{"blob": "in", "out": "out"}`, wantErr: `blob "in" not found`, perm: true},
		{name: "sort blob not numbers", fn: "sort", args: `{"blob": "in", "out": "out"}`, blobs: map[string]string{"in": `["a"]`},
			wantErr: `blob "in" is not a JSON array of numbers`, perm: true},
		{name: "sort no args", fn: "sort", wantErr: "values or blob is required", perm: true},
		{name: "sort strings", fn: "sort", args: `{"values": ["b", "a"]}`, wantErr: "values", perm: true},
		{name: "sort blob without out", fn: "sort", args: `{"blob": "in"}`, wantErr: "blob needs out", perm: true},
		{name: "sort both", fn: "sort", args: `{"values": [1], "blob": "in", "out": "o"}`, wantErr: "mutually exclusive", perm: true},

		{name: "merge lists", fn: "merge", args: `{"lists": [[1, 4, 9], [], [2, 3, 10], [0]]}`, want: `{"values":[0,1,2,3,4,9,10]}`},
		{name: "merge none", fn: "merge", args: `{"lists": []}`, want: `{"values":[]}`},
		{name: "merge blobs", fn: "merge", args: `{"blobs": ["a", "b"], "out": "m"}`,
			blobs: map[string]string{"a": `[1,3]`, "b": `[2,4,5]`},
			want:  `{"out":"m","count":5}`, wantOut: map[string]string{"m": `[1,2,3,4,5]`}},
		{name: "merge unsorted", fn: "merge", args: `{"lists": [[1], [3, 2]]}`, wantErr: "lists[1] is not sorted", perm: true},
		{name: "merge unsorted blob", fn: "merge", args: `{"blobs": ["a"], "out": "m"}`, blobs: map[string]string{"a": `[2,1]`},
			wantErr: `blob "a" is not sorted`, perm: true},
		{name: "merge missing blob", fn: "merge", args: `{"blobs": ["a"], "out": "m"}`, wantErr: `blob "a" not found`, perm: true},
		{name: "merge blobs without out", fn: "merge", args: `{"blobs": ["a"]}`, wantErr: "blobs needs out", perm: true},
		{name: "merge unknown field", fn: "merge", args: `{"list": [[1]]}`, wantErr: `unknown field "list"`, perm: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, bucket := setupBuiltins(t)
			for k, v := range tt.blobs {
				putBlob(t, bucket, k, []byte(v))
			}
			got, err := call(context.Background(), t, m, tt.fn, tt.args, max(tt.attempt, 1))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				if errors.Is(err, task.ErrPermanent) != tt.perm {
					t.Errorf("errors.Is(%v, ErrPermanent) = %v, want %v", err, !tt.perm, tt.perm)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if !sameJSON(t, got, []byte(tt.want)) {
				t.Errorf("result = %s, want %s", got, tt.want)
			}
			for k, want := range tt.wantOut {
				if got := getBlob(t, bucket, k); !sameJSON(t, got, []byte(want)) {
					t.Errorf("blob %q = %s, want %s", k, got, want)
				}
			}
		})
	}
}

func TestSleepCancelled(t *testing.T) {
	m, _ := setupBuiltins(t)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	done := make(chan error, 1)
	go func() {
		_, err := call(ctx, t, m, "sleep", `{"ms": 3600000}`, 1)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("sleep did not return after its context was cancelled")
	}
}

func TestSortMergeCancelled(t *testing.T) {
	m, bucket := setupBuiltins(t)
	putBlob(t, bucket, "a", []byte("[1,2,3]"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tt := range []struct{ fn, args string }{
		{"sort", `{"blob": "a", "out": "b"}`},
		{"merge", `{"blobs": ["a"], "out": "b"}`},
		{"sha256", `{"blob": "a"}`},
	} {
		if _, err := call(ctx, t, m, tt.fn, tt.args, 1); err == nil || errors.Is(err, task.ErrPermanent) {
			t.Errorf("%s with cancelled ctx: err = %v, want a retryable error", tt.fn, err)
		}
	}
}

// TestSortMergeChunked sorts chunks of a list as separate tasks, as a
// fan-out would, and merges the sorted chunks.
func TestSortMergeChunked(t *testing.T) {
	m, bucket := setupBuiltins(t)
	var values []float64
	for i := range 1000 {
		values = append(values, float64((i*7919)%1000))
	}
	const chunks = 7
	var keys []string
	for c := range chunks {
		in, out := "in/"+string(rune('a'+c)), "sorted/"+string(rune('a'+c))
		b, _ := json.Marshal(values[c*len(values)/chunks : (c+1)*len(values)/chunks])
		putBlob(t, bucket, in, b)
		if _, err := call(context.Background(), t, m, "sort", `{"blob":"`+in+`","out":"`+out+`"}`, 1); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, out)
	}
	blobs, _ := json.Marshal(keys)
	res, err := call(context.Background(), t, m, "merge", `{"blobs":`+string(blobs)+`,"out":"all"}`, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !sameJSON(t, res, []byte(`{"out":"all","count":1000}`)) {
		t.Errorf("merge result = %s", res)
	}
	var got []float64
	if err := json.Unmarshal(getBlob(t, bucket, "all"), &got); err != nil {
		t.Fatal(err)
	}
	for i, v := range got {
		if v != float64(i) {
			t.Fatalf("merged[%d] = %v, want %d", i, v, i)
		}
	}
}
