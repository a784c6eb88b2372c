// Command mergesort sorts N random integers (default 10,000,000) as a
// Drover group: K chunks (default 8) sorted by `sort` members in parallel,
// then merged by a `merge` callback, and compares that with sorting them
// in this process. It talks to the dispatcher at DROVER_URL
// (http://127.0.0.1:8080, as `make run` serves) and writes the chunks to,
// and reads the result from, the bucket the runners use: DROVER_BUCKET,
// by default the embedded default's archive under DROVER_DATA_DIR
// (.drover, relative to where `make run` runs). See README.md.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"gocloud.dev/blob"
	_ "gocloud.dev/blob/fileblob"
	_ "gocloud.dev/blob/s3blob"

	"github.com/droverhq/drover/client"
	"github.com/droverhq/drover/pkg/task"
)

func main() {
	n := flag.Int("n", 10_000_000, "how many random integers to sort")
	k := flag.Int("chunks", 8, "how many chunks (sort members) to split them into")
	seed := flag.Uint64("seed", uint64(time.Now().UnixNano()), "random seed")
	flag.Parse()
	if err := run(*n, *k, *seed); err != nil {
		fmt.Fprintln(os.Stderr, "mergesort:", err)
		os.Exit(1)
	}
}

func run(n, k int, seed uint64) error {
	if n < 1 || k < 1 || k > n {
		return fmt.Errorf("want 1 ≤ chunks ≤ n, got n=%d chunks=%d", n, k)
	}
	ctx := context.Background()
	bucket, err := openBucket(ctx)
	if err != nil {
		return err
	}
	defer bucket.Close()
	url := os.Getenv("DROVER_URL")
	if url == "" {
		url = "http://127.0.0.1:8080"
	}
	var opts []client.Option
	if key := os.Getenv("DROVER_API_KEY"); key != "" {
		opts = append(opts, client.WithAPIKey(key))
	}
	c := client.New(url, opts...)

	rng := rand.New(rand.NewPCG(seed, 15))
	input := make([]float64, n)
	for i := range input {
		input[i] = float64(rng.IntN(1_000_000_000))
	}
	fmt.Printf("sorting %d random integers in %d chunks (seed %d)\n", n, k, seed)

	t0 := time.Now()
	local := slices.Clone(input)
	slices.Sort(local)
	fmt.Printf("local, one process:   %s\n", time.Since(t0).Round(time.Millisecond))

	run := task.NewID(time.Now())
	prefix := "examples/mergesort/" + run + "/"
	t0 = time.Now()
	spec := task.GroupSpec{Then: &task.Spec{
		Function: "merge", Timeout: task.Duration(30 * time.Minute),
		Args: json.RawMessage(fmt.Sprintf(`{"out":%q}`, prefix+"sorted.json")),
	}}
	for i := range k {
		lo, hi := i*n/k, (i+1)*n/k
		in, out := fmt.Sprintf("%sin/%d.json", prefix, i), fmt.Sprintf("%ssorted/%d.json", prefix, i)
		if err := writeNumbers(ctx, bucket, in, input[lo:hi]); err != nil {
			return err
		}
		spec.Tasks = append(spec.Tasks, task.Spec{
			Function: "sort", Timeout: task.Duration(30 * time.Minute),
			Args: json.RawMessage(fmt.Sprintf(`{"blob":%q,"out":%q}`, in, out)),
		})
	}
	upload := time.Since(t0)
	t1 := time.Now()
	g, err := c.SubmitGroup(ctx, spec)
	if err != nil {
		return fmt.Errorf("submit the group: %w", err)
	}
	last := ""
	g, err = c.WaitGroup(ctx, g.ID, client.WaitGroupOptions{Interval: 250 * time.Millisecond, Progress: func(g *task.Group) {
		line := fmt.Sprintf("  group %s: %d/%d chunks sorted, merge %s", g.ID, g.Counts[task.Succeeded], g.Size, g.CallbackState)
		if line != last {
			fmt.Fprintln(os.Stderr, line)
			last = line
		}
	}})
	if err != nil {
		return fmt.Errorf("wait for group: %w", err)
	}
	if g.State != task.GroupSucceeded {
		cb, _ := c.Get(ctx, g.Callback)
		return fmt.Errorf("group %s ended %s (callback %+v)", g.ID, g.State, cb)
	}
	distributed := time.Since(t1)
	got, err := readNumbers(ctx, bucket, prefix+"sorted.json")
	if err != nil {
		return err
	}
	fmt.Printf("distributed, %d sort members + merge: %s (+ %s writing the chunks to the bucket)\n",
		k, distributed.Round(time.Millisecond), upload.Round(time.Millisecond))
	// Sorted, and a permutation of the input: equal to the input sorted
	// here, element for element.
	switch {
	case !slices.IsSorted(got):
		return fmt.Errorf("sorted: NOT sorted")
	case !slices.Equal(got, local):
		return fmt.Errorf("sorted: in order but not a permutation of the input (%d values, want %d)", len(got), len(local))
	}
	fmt.Println("sorted: ok")
	if os.Getenv("KEEP") == "" {
		it := bucket.List(&blob.ListOptions{Prefix: prefix})
		for {
			o, err := it.Next(ctx)
			if err != nil {
				break
			}
			_ = bucket.Delete(ctx, o.Key)
		}
	}
	return nil
}

func openBucket(ctx context.Context) (*blob.Bucket, error) {
	url := os.Getenv("DROVER_BUCKET")
	if url == "" {
		dir := os.Getenv("DROVER_DATA_DIR")
		if dir == "" {
			dir = ".drover"
		}
		abs, err := filepath.Abs(filepath.Join(dir, "archive"))
		if err != nil {
			return nil, err
		}
		if _, err := os.Stat(abs); err != nil {
			return nil, fmt.Errorf("no embedded archive at %s: run this from where `make run` runs, or set DROVER_DATA_DIR or DROVER_BUCKET", abs)
		}
		url = "file://" + filepath.ToSlash(abs) + "?create_dir=1&no_tmp_dir=1"
	}
	b, err := blob.OpenBucket(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("open DROVER_BUCKET %s: %w", url, err)
	}
	return b, nil
}

// writeNumbers writes values as a JSON array of integers to key.
func writeNumbers(ctx context.Context, b *blob.Bucket, key string, values []float64) error {
	w, err := b.NewWriter(ctx, key, &blob.WriterOptions{ContentType: "application/json"})
	if err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	bw.WriteByte('[')
	var num []byte
	for i, v := range values {
		if i > 0 {
			bw.WriteByte(',')
		}
		num = strconv.AppendInt(num[:0], int64(v), 10)
		bw.Write(num)
	}
	bw.WriteByte(']')
	if err := bw.Flush(); err != nil {
		w.Close()
		return fmt.Errorf("write %s: %w", key, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	return nil
}

func readNumbers(ctx context.Context, b *blob.Bucket, key string) ([]float64, error) {
	r, err := b.NewReader(ctx, key, nil)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	defer r.Close()
	var out []float64
	if err := json.NewDecoder(bufio.NewReaderSize(r, 1<<20)).Decode(&out); err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	return out, nil
}
