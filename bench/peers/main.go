// Command peers measures the task queues users would pick instead of
// Drover's embedded default on the same no-op workload as `drover bench`:
// asynq on Redis (with the persistence the script configures: appendonly,
// appendfsync everysec), and River on PostgreSQL and on SQLite. It is its
// own module, never a dependency of Drover; run.sh drives it beside
// `drover bench` and prints one table.
//
// Two phases per system, as drover bench's:
//
//   - burn-down: -tasks tasks inserted with no worker running (the
//     insert rate is reported), then the workers start and the drain is
//     timed from their start to the last completion;
//   - rate: one task every 1/-rate s for -duration, open loop; each task's
//     latency runs from its due time to its completion: River's completed
//     event (after its completer wrote the job's state), asynq's handler
//     return (before asynq marks it done: slightly in asynq's favour).
//
// It prints one JSON object per run.
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	_ "modernc.org/sqlite"
)

type result struct {
	System      string  `json:"system"`
	Tasks       int     `json:"tasks"`
	Insert      float64 `json:"insert_per_s"`
	BurnDown    float64 `json:"burn_down_per_s"`
	Rate        int     `json:"rate_per_s"`
	RateTasks   int     `json:"rate_tasks"`
	P50         float64 `json:"p50_ms"`
	P99         float64 `json:"p99_ms"`
	Max         float64 `json:"max_ms"`
	Workers     int     `json:"workers"`
	Persistence string  `json:"persistence"`
}

var (
	system   = flag.String("system", "", "asynq, river-postgres or river-sqlite")
	tasks    = flag.Int("tasks", 100000, "tasks in the burn-down")
	rate     = flag.Int("rate", 100, "offered rate of the latency phase, tasks/s")
	duration = flag.Duration("duration", 10*time.Second, "how long the rate is offered")
	workers  = flag.Int("workers", 100, "workers (asynq concurrency, River MaxWorkers)")
	redis    = flag.String("redis", "127.0.0.1:6379", "Redis address (asynq)")
	pg       = flag.String("pg", "", "PostgreSQL URL (river-postgres)")
	sqlite   = flag.String("sqlite", "", "SQLite file (river-sqlite)")
	persist  = flag.String("persistence", "", "what the server persists, for the report")
)

// peer is one system: insert n tasks (each carrying its due time), start
// and stop its workers; done is called once per completed task with its
// due time.
type peer interface {
	insert(ctx context.Context, due []int64) error
	start(ctx context.Context, done func(due int64)) error
	stop(ctx context.Context)
}

func main() {
	flag.Parse()
	ctx := context.Background()
	var p peer
	var err error
	switch *system {
	case "asynq":
		p = newAsynq()
	case "river-postgres":
		p, err = newRiverPG(ctx)
	case "river-sqlite":
		p, err = newRiverSQLite(ctx)
	default:
		err = fmt.Errorf("-system %q: want asynq, river-postgres or river-sqlite", *system)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "peers:", err)
		os.Exit(1)
	}
	r := result{System: *system, Tasks: *tasks, Rate: *rate, Workers: *workers, Persistence: *persist}
	if err := run(ctx, p, &r); err != nil {
		fmt.Fprintln(os.Stderr, "peers:", *system+":", err)
		os.Exit(1)
	}
	_ = json.NewEncoder(os.Stdout).Encode(r)
}

func run(ctx context.Context, p peer, r *result) error {
	// Burn-down.
	due := make([]int64, *tasks)
	t0 := time.Now()
	if err := p.insert(ctx, due); err != nil {
		return fmt.Errorf("insert: %w", err)
	}
	r.Insert = float64(*tasks) / time.Since(t0).Seconds()
	var (
		mu      sync.Mutex
		count   atomic.Int64
		allDone = make(chan struct{})
		lat     []time.Duration
		target  atomic.Int64
		timing  atomic.Bool
	)
	target.Store(int64(*tasks))
	done := func(d int64) {
		if timing.Load() && d != 0 {
			l := time.Since(time.Unix(0, d))
			mu.Lock()
			lat = append(lat, l)
			mu.Unlock()
		}
		if count.Add(1) == target.Load() {
			close(allDone)
		}
	}
	t1 := time.Now()
	if err := p.start(ctx, done); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	defer p.stop(context.WithoutCancel(ctx))
	select {
	case <-allDone:
	case <-time.After(30 * time.Minute):
		return fmt.Errorf("burn-down: %d of %d done after 30 min", count.Load(), *tasks)
	}
	r.BurnDown = float64(*tasks) / time.Since(t1).Seconds()

	// Open loop at the rate.
	n := max(int(float64(*rate)*duration.Seconds()), 1)
	r.RateTasks = n
	allDone = make(chan struct{})
	count.Store(0)
	target.Store(int64(n))
	timing.Store(true)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range n {
		at := start.Add(time.Duration(float64(i) / float64(*rate) * float64(time.Second)))
		time.Sleep(time.Until(at))
		wg.Go(func() {
			if err := p.insert(ctx, []int64{at.UnixNano()}); err != nil {
				fmt.Fprintln(os.Stderr, "peers: insert:", err)
			}
		})
	}
	wg.Wait()
	select {
	case <-allDone:
	case <-time.After(2 * time.Minute):
		return fmt.Errorf("rate: %d of %d done after 2 min", count.Load(), n)
	}
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	r.P50 = ms(lat[len(lat)/2])
	r.P99 = ms(lat[min(len(lat)-1, len(lat)*99/100)])
	r.Max = ms(lat[len(lat)-1])
	return nil
}

// asynq on Redis.
type asynqPeer struct {
	cl  *asynq.Client
	srv *asynq.Server
}

func newAsynq() *asynqPeer {
	return &asynqPeer{cl: asynq.NewClient(asynq.RedisClientOpt{Addr: *redis})}
}

func (a *asynqPeer) insert(ctx context.Context, due []int64) error {
	// asynq has no batch enqueue: 16 enqueuers in parallel.
	var next atomic.Int64
	var first atomic.Pointer[error]
	var wg sync.WaitGroup
	for range min(16, len(due)) {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(len(due)); i = next.Add(1) - 1 {
				if _, err := a.cl.EnqueueContext(ctx, asynq.NewTask("noop", strconv.AppendInt(nil, due[i], 10)), asynq.MaxRetry(3)); err != nil {
					first.CompareAndSwap(nil, &err)
					return
				}
			}
		})
	}
	wg.Wait()
	if p := first.Load(); p != nil {
		return *p
	}
	return nil
}

func (a *asynqPeer) start(_ context.Context, done func(int64)) error {
	a.srv = asynq.NewServer(asynq.RedisClientOpt{Addr: *redis}, asynq.Config{Concurrency: *workers, LogLevel: asynq.ErrorLevel})
	mux := asynq.NewServeMux()
	mux.HandleFunc("noop", func(_ context.Context, t *asynq.Task) error {
		d, _ := strconv.ParseInt(string(t.Payload()), 10, 64)
		done(d)
		return nil
	})
	return a.srv.Start(mux)
}

func (a *asynqPeer) stop(context.Context) {
	if a.srv != nil {
		a.srv.Shutdown()
	}
	a.cl.Close()
}

// River, on either driver.
type noopArgs struct {
	Due int64 `json:"due"`
}

func (noopArgs) Kind() string { return "noop" }

type noopWorker struct {
	river.WorkerDefaults[noopArgs]
}

func (*noopWorker) Work(context.Context, *river.Job[noopArgs]) error { return nil }

type riverPeer[TTx any] struct {
	client *river.Client[TTx]
	cancel func()
}

func riverConfig() *river.Config {
	w := river.NewWorkers()
	river.AddWorker(w, &noopWorker{})
	return &river.Config{
		Queues:  map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: *workers}},
		Workers: w,
		Logger:  nil,
	}
}

func newRiverPG(ctx context.Context) (peer, error) {
	pool, err := pgxpool.New(ctx, *pg)
	if err != nil {
		return nil, err
	}
	drv := riverpgxv5.New(pool)
	m, err := rivermigrate.New(drv, nil)
	if err != nil {
		return nil, err
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	c, err := river.NewClient(drv, riverConfig())
	if err != nil {
		return nil, err
	}
	return &riverPeer[pgx.Tx]{client: c}, nil
}

func newRiverSQLite(ctx context.Context) (peer, error) {
	db, err := sql.Open("sqlite", "file:"+*sqlite+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=synchronous(FULL)")
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1) // SQLite has one writer
	drv := riversqlite.New(db)
	m, err := rivermigrate.New(drv, nil)
	if err != nil {
		return nil, err
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	cfg := riverConfig()
	cfg.FetchCooldown = 10 * time.Millisecond
	cfg.FetchPollInterval = 50 * time.Millisecond // no LISTEN/NOTIFY on SQLite: it polls
	c, err := river.NewClient(drv, cfg)
	if err != nil {
		return nil, err
	}
	return &riverPeer[*sql.Tx]{client: c}, nil
}

func (r *riverPeer[TTx]) insert(ctx context.Context, due []int64) error {
	for lo := 0; lo < len(due); lo += 1000 {
		ps := make([]river.InsertManyParams, 0, min(1000, len(due)-lo))
		for _, d := range due[lo:min(lo+1000, len(due))] {
			ps = append(ps, river.InsertManyParams{Args: noopArgs{Due: d}, InsertOpts: &river.InsertOpts{MaxAttempts: 3}})
		}
		if _, err := r.client.InsertMany(ctx, ps); err != nil {
			return err
		}
	}
	return nil
}

func (r *riverPeer[TTx]) start(ctx context.Context, done func(int64)) error {
	events, cancel := r.client.SubscribeConfig(&river.SubscribeConfig{ChanSize: *tasks + 1000, Kinds: []river.EventKind{river.EventKindJobCompleted}})
	r.cancel = cancel
	go func() {
		for ev := range events {
			var a noopArgs
			_ = json.Unmarshal(ev.Job.EncodedArgs, &a)
			done(a.Due)
		}
	}()
	return r.client.Start(ctx)
}

func (r *riverPeer[TTx]) stop(ctx context.Context) {
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_ = r.client.Stop(sctx)
	if r.cancel != nil {
		r.cancel()
	}
}
