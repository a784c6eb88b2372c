package runner_test

import (
	"context"
	"fmt"
	"log"

	"gocloud.dev/blob/memblob"

	"github.com/droverhq/drover/pkg/task"
	"github.com/droverhq/drover/runner"
)

// A chunked merge sort with the built-ins: split the input, sort each chunk
// (in a real deployment, one task per chunk, run in parallel by many
// runners), then merge the sorted chunks.
func ExampleRegisterBuiltins_mergeSort() {
	ctx := context.Background()
	bucket := memblob.OpenBucket(nil)
	defer bucket.Close()
	m := runner.NewMux()
	runner.RegisterBuiltins(m, bucket)

	run := func(function, args string) string {
		h, _ := m.Handler(function)
		res, err := h.Handle(ctx, &task.Task{ID: "example", Function: function, Args: []byte(args), Attempt: 1})
		if err != nil {
			log.Fatal(err)
		}
		return string(res)
	}

	// Split.
	bucket.WriteAll(ctx, "chunks/0", []byte("[9, 2, 7]"), nil)
	bucket.WriteAll(ctx, "chunks/1", []byte("[4, 8, 1]"), nil)
	bucket.WriteAll(ctx, "chunks/2", []byte("[6, 3, 5]"), nil)
	// Sort each chunk.
	for _, c := range []string{"0", "1", "2"} {
		fmt.Println(run("sort", `{"blob": "chunks/`+c+`", "out": "sorted/`+c+`"}`))
	}
	// Merge.
	fmt.Println(run("merge", `{"blobs": ["sorted/0", "sorted/1", "sorted/2"], "out": "sorted/all"}`))
	all, _ := bucket.ReadAll(ctx, "sorted/all")
	fmt.Print(string(all))

	// The same, inline.
	fmt.Println(run("merge", `{"lists": [[2, 7, 9], [1, 4, 8], [3, 5, 6]]}`))
	// Output:
	// {"out":"sorted/0","count":3}
	// {"out":"sorted/1","count":3}
	// {"out":"sorted/2","count":3}
	// {"out":"sorted/all","count":9}
	// [1,2,3,4,5,6,7,8,9]
	// {"values":[1,2,3,4,5,6,7,8,9]}
}
