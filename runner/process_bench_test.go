package runner

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/droverhq/drover/pkg/task"
)

// BenchmarkProcess measures Process on deliveries of a no-op function
// taken from memq, with its status read from memstore and its outcome
// published on memq: the runner's own work per task (decode, status
// check, run, publish, ack). Submitting, receiving and draining the events
// are done with the timer stopped, a batch at a time. Besides wall time it
// reports cpu-ns/op, the process's CPU time (user + system, GC included)
// over the timed parts, which other load on the machine disturbs less.
func BenchmarkProcess(b *testing.B) {
	for _, workers := range []int{1, 8} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			e := setupProcess(b, Config{}, func(m *Mux) {
				m.HandleFunc("noop", func(context.Context, *task.Task) (task.Result, error) { return nil, nil })
			})
			ctx := context.Background()
			const batch = 1000
			var cpu time.Duration
			measured := true
			b.ReportAllocs()
			b.ResetTimer()
			for done := 0; done < b.N; {
				b.StopTimer()
				n := min(batch, b.N-done)
				ids := e.submit(b, "noop", nil, n)
				ds := e.receive(b, n)
				next := make(chan *task.Delivery, n)
				for _, d := range ds {
					next <- d
				}
				close(next)
				b.StartTimer()
				cpu0, ok0 := processCPU()

				var wg sync.WaitGroup
				for range workers {
					wg.Go(func() {
						for d := range next {
							if o := e.r.Process(ctx, d); o != Acked {
								b.Errorf("outcome %d, want Acked", o)
							}
						}
					})
				}
				wg.Wait()

				cpu1, ok1 := processCPU()
				b.StopTimer()
				cpu += cpu1 - cpu0
				measured = measured && ok0 && ok1
				if evs := e.drainEvents(b); len(evs) < n {
					b.Fatalf("%d events for %d tasks", len(evs), n)
				}
				al := e.coll.Actions()
				for _, id := range ids {
					al.Delete(&task.Status{ID: id})
				}
				if err := al.Do(ctx); err != nil {
					b.Fatal(err)
				}
				done += n
				b.StartTimer()
			}
			if measured {
				b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
			}
		})
	}
}

// processCPU returns the CPU time (user + system) the process has used.
func processCPU() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
