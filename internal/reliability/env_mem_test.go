package reliability

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gocloud.dev/blob"

	"github.com/droverhq/drover/client"
	"github.com/droverhq/drover/functions/collect/collector"
	"github.com/droverhq/drover/functions/dispatch/api"
	_ "github.com/droverhq/drover/internal/drivers"
	"github.com/droverhq/drover/pkg/memq"
	"github.com/droverhq/drover/pkg/task"
	"github.com/droverhq/drover/runner"
)

// The embedded backend runs dispatch, runners and collectors in this
// process over memq, a memory docstore and a memory bucket. memq is
// in-process, so its parts cannot be separate processes; a "kill -9" of
// one is modelled honestly instead of by a graceful shutdown:
//
//   - runners and collectors run a receive loop of their own around the
//     library's Runner.Process, Runner.Beat and Collector.Process (the same
//     code Runner.Run and Collector.Run drive), over deliveries wrapped so
//     that once the part is killed its Ack, Nack and SetVisibility calls
//     do nothing;
//   - Kill sets that flag and cancels the part's context; its
//     subscription is abandoned, not shut down, so even messages the
//     portable subscription had prefetched come back only after their
//     visibility timeout, as with a dead process.
//
// Runner.Run's own staged shutdown (graceful release) is therefore not
// what is exercised here; the moto backend kills real processes.
type memBackend struct{}

func (memBackend) name() string { return "embedded" }

var memSeq atomic.Int64

type memEnv struct {
	t       *testing.T
	tasksQ  string
	eventsQ string
	vis     time.Duration
	tasks   *task.Topic
	events  *task.Topic
	store   *task.Store
	archive *task.Archive
	rec     *MemRecorder
	url     string
	cl      *client.Client
	log     *slog.Logger
	mu      sync.Mutex
	procs   []*memProc
}

func testLogger() *slog.Logger {
	level := slog.LevelError + 1
	if os.Getenv("DROVER_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

func (memBackend) newEnv(t *testing.T, o envOpts) env {
	t.Helper()
	n := memSeq.Add(1)
	if o.Visibility == 0 {
		o.Visibility = time.Second
	}
	ctx := context.Background()
	e := &memEnv{
		t: t, tasksQ: fmt.Sprintf("rel-tasks-%d", n), eventsQ: fmt.Sprintf("rel-events-%d", n),
		vis: o.Visibility, rec: &MemRecorder{}, log: testLogger(),
	}
	var err error
	if e.tasks, err = task.OpenTopic(ctx, "memq://"+e.tasksQ); err != nil {
		t.Fatal(err)
	}
	if e.events, err = task.OpenTopic(ctx, "memq://"+e.eventsQ); err != nil {
		t.Fatal(err)
	}
	if e.store, err = task.OpenStore(ctx, fmt.Sprintf("mem://rel-%d/id", n)); err != nil {
		t.Fatal(err)
	}
	bucket, err := blob.OpenBucket(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	if o.Faults != nil {
		bucket = blob.NewBucket(&faultBucket{inner: bucket, cfg: o.Faults})
	}
	e.archive = task.NewArchive(bucket)
	if !o.NoDispatch {
		srv := httptest.NewServer(api.New(e.tasks, e.archive, e.store, e.log, api.Config{}))
		e.url = srv.URL
		e.cl = client.New(srv.URL)
		t.Cleanup(srv.Close)
	}
	t.Cleanup(func() {
		e.mu.Lock()
		procs := e.procs
		e.mu.Unlock()
		for _, p := range procs {
			p.Kill()
		}
		_ = e.tasks.Shutdown(ctx)
		_ = e.events.Shutdown(ctx)
		memq.Delete(e.tasksQ)
		memq.Delete(e.eventsQ)
	})
	return e
}

func (e *memEnv) Client() *client.Client                          { return e.cl }
func (e *memEnv) DispatchURL() string                             { return e.url }
func (e *memEnv) Store() *task.Store                              { return e.store }
func (e *memEnv) Archive() *task.Archive                          { return e.archive }
func (e *memEnv) Executions(*testing.T) map[string]int            { return e.rec.Counts() }
func (e *memEnv) ExecutionRunners(*testing.T) map[string][]string { return e.rec.Runners() }
func (e *memEnv) Pending(*testing.T) int                          { return memq.Stats(e.tasksQ).Len() }

func (e *memEnv) SendRaw(t *testing.T, body []byte) {
	if err := e.tasks.Send(context.Background(), body, 0); err != nil {
		t.Fatal(err)
	}
}

// memProc is an in-process runner or collector.
type memProc struct {
	killed atomic.Bool
	cancel context.CancelFunc
	done   chan struct{}
}

func (p *memProc) Done() <-chan struct{} { return p.done }

// crash marks the part dead and stops it without waiting (callable from
// its own goroutines).
func (p *memProc) crash() {
	p.killed.Store(true)
	p.cancel()
}

func (p *memProc) Kill() {
	p.crash()
	<-p.done
}

// killLease drops lease calls once its part is killed.
type killLease struct {
	inner task.LeaseControl
	p     *memProc
}

func (l killLease) ReceiveCount() int { return l.inner.ReceiveCount() }
func (l killLease) SetVisibility(ctx context.Context, d time.Duration) error {
	if l.p.killed.Load() {
		return fmt.Errorf("process killed")
	}
	return l.inner.SetVisibility(ctx, d)
}

// wrap returns d with settlement that does nothing once p is killed. With
// crashOnAck, the ack of attempt 1 of a rel-crashonce task kills p
// instead: the outcome is published, the ack never happens.
func (p *memProc) wrap(d *task.Delivery, crashOnAck bool) *task.Delivery {
	w := *d
	if d.Lease != nil {
		w.Lease = killLease{inner: d.Lease, p: p}
	}
	w.Ack = func() {
		if crashOnAck && d.Attempt() == 1 {
			if m, err := task.DecodeMessage(d.Body); err == nil && m.Function == FnCrashOnce {
				p.crash()
				return
			}
		}
		if !p.killed.Load() {
			d.Ack()
		}
	}
	w.Nack = func() {
		if !p.killed.Load() {
			d.Nack()
		}
	}
	return &w
}

func (e *memEnv) track(p *memProc) {
	e.mu.Lock()
	e.procs = append(e.procs, p)
	e.mu.Unlock()
}

func (e *memEnv) StartRunner(name string, o runnerOpts) proc {
	if o.Concurrency <= 0 {
		o.Concurrency = 1
	}
	mux := runner.NewMux()
	Register(mux, e.rec, name)
	hb := 200 * time.Millisecond
	r := runner.New(mux, e.events, e.archive, e.store, e.log, runner.Config{
		Name: name, Concurrency: o.Concurrency, Heartbeat: hb, Lease: max(e.vis, 2*hb),
		Grace: 100 * time.Millisecond, BackoffBase: 200 * time.Millisecond, BackoffMax: 2 * time.Second,
	})
	ctx, cancel := context.WithCancel(context.Background())
	p := &memProc{cancel: cancel, done: make(chan struct{})}
	sub, err := task.OpenSubscription(ctx, fmt.Sprintf("memq://%s?visibility=%s", e.tasksQ, e.vis))
	if err != nil {
		e.t.Fatal(err)
	}
	var wg sync.WaitGroup
	if !o.NoHeartbeat {
		wg.Go(func() {
			tk := time.NewTicker(hb)
			defer tk.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tk.C:
					r.Beat(ctx)
				}
			}
		})
	}
	for range o.Concurrency {
		wg.Go(func() {
			for ctx.Err() == nil {
				d, err := sub.Receive(ctx)
				if err != nil {
					if ctx.Err() == nil {
						time.Sleep(50 * time.Millisecond)
					}
					continue
				}
				r.Process(ctx, p.wrap(d, o.CrashAfterOutcome))
			}
		})
	}
	go func() { wg.Wait(); close(p.done) }()
	e.track(p)
	return p
}

func (e *memEnv) StartCollector(name string) proc {
	col := collector.New(e.store, e.archive, e.log)
	col.Workflow.Tasks = e.tasks
	ctx, cancel := context.WithCancel(context.Background())
	p := &memProc{cancel: cancel, done: make(chan struct{})}
	sub, err := task.OpenSubscription(ctx, fmt.Sprintf("memq://%s?visibility=%s", e.eventsQ, e.vis))
	if err != nil {
		e.t.Fatal(err)
	}
	ch := make(chan *task.Delivery, 500)
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for ctx.Err() == nil {
				d, err := sub.Receive(ctx)
				if err != nil {
					continue
				}
				select {
				case ch <- p.wrap(d, false):
				case <-ctx.Done():
				}
			}
		})
	}
	wg.Go(func() {
		for {
			var batch []*task.Delivery
			select {
			case <-ctx.Done():
				return
			case d := <-ch:
				batch = append(batch, d)
			}
		fill:
			for len(batch) < 500 {
				select {
				case d := <-ch:
					batch = append(batch, d)
				default:
					break fill
				}
			}
			// Under the part's own context: a kill interrupts the batch
			// between its store reads, writes and workflow sends, as a
			// kill -9 of the process would, and its deliveries are
			// neither acked nor nacked (they come back after their
			// visibility).
			col.Process(ctx, batch)
		}
	})
	go func() { wg.Wait(); close(p.done) }()
	e.track(p)
	return p
}
