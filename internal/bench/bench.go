// Package bench measures Drover's whole pipeline: HTTP batch submit →
// tasks queue → runners → events queue → collector → status store, with
// no-op functions, in one process on the embedded default or against the
// backends DROVER_* and AWS_* point at. It is the engine of `drover bench`.
//
// Phases, each on the same running system:
//
//   - burn-down: submit Tasks tasks with the runners stopped (enqueue
//     rate), then start the runners and time the drain;
//   - steady: Tasks tasks submitted as fast as the clients can while the
//     runners run (closed loop), timed from the first submit to the last
//     terminal status;
//   - one open-loop phase per offered rate: task i is due at start+i/rate;
//     clients send whatever is due in one batch request, and latencies are
//     timed from each task's due time, so a slow system cannot hide
//     queueing behind its own slowness (no coordinated omission).
//
// Latencies come from the documents the collector writes (the bench runs
// the collector's receive loop itself and looks at what each Process call
// wrote): submit→running is the terminal document's started_at minus the
// due time, submit→terminal the moment the collector's batch that wrote
// the terminal document returned, minus the due time.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/droverhq/drover/client"
	"github.com/droverhq/drover/functions/collect/collector"
	"github.com/droverhq/drover/functions/dispatch/api"
	"github.com/droverhq/drover/internal/embedded"
	"github.com/droverhq/drover/internal/envconfig"
	"github.com/droverhq/drover/pkg/memq"
	"github.com/droverhq/drover/pkg/task"
	"github.com/droverhq/drover/runner"
	"github.com/droverhq/drover/runner/serve"
)

// Backends.
const (
	Embedded = "embedded" // in-process memq queues, memory store and bucket
	Env      = "env"      // DROVER_* and AWS_* from the environment
)

// Options configure Run. Zero values take the defaults in parentheses.
type Options struct {
	Backend string // Embedded or Env (Embedded)
	// Durability of the embedded backend: embedded.Memory (the default
	// here) or embedded.Durable, its queues and status store journaled in
	// one storage engine in DataDir (a new temporary directory when
	// empty, removed at the end), as drover dev runs by default.
	Durability string
	DataDir    string
	// Tasks is the size of the burn-down and steady phases (100000).
	Tasks int
	// Rates are the offered rates of the open-loop phases, tasks/s.
	Rates []int
	// Duration is how long each open-loop phase offers its rate (5s).
	Duration time.Duration
	// Runners and Concurrency: runners started, tasks each runs at once
	// (2, 8: the embedded default's).
	Runners, Concurrency int
	// Clients is how many HTTP requests are in flight at most (4), Batch
	// the most tasks one request carries (1000, the API's limit).
	Clients, Batch int
	// Linger is how long an open-loop client lets due tasks wait for
	// more to fill its request, unless the request is full (0: it sends
	// whatever is due at once). The wait counts in the latencies, which
	// are timed from each task's due time.
	Linger time.Duration
	// Drain is how long a phase waits for its last tasks before counting
	// them unanswered (60s).
	Drain time.Duration
	// SkipSteady skips the steady phase; SkipBurn the burn-down.
	SkipSteady, SkipBurn bool
	// SDKCeiling measures the raw SQS ceiling too (env on SQS).
	SDKCeiling bool
	// CountRequests counts the requests sent to the AWS endpoint by
	// operation, through a proxy in front of AWS_ENDPOINT_URL (the env
	// backend on an emulator).
	CountRequests bool
	counter       *reqCounter
	count0        map[string]OpCount
	// CPUProfile, if set, is written for the whole run.
	CPUProfile string
	// Trace, if set, gets a runtime execution trace of the whole run
	// (go tool trace): where the tail's scheduling delays come from.
	Trace string
	// MemProfile, if set, gets a heap profile taken after the last phase,
	// with the system still running (what it retains, not what it freed).
	MemProfile string
	// Log receives the system's warnings (nil: discarded).
	Log *slog.Logger
}

func (o *Options) defaults() {
	if o.Backend == "" {
		o.Backend = Embedded
	}
	if o.Durability == "" {
		o.Durability = embedded.Memory
	}
	if o.Tasks <= 0 {
		o.Tasks = 100000
	}
	if o.Duration <= 0 {
		o.Duration = 5 * time.Second
	}
	if o.Runners <= 0 {
		o.Runners = 2
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 8
	}
	if o.Clients <= 0 {
		o.Clients = 4
	}
	if o.Batch <= 0 || o.Batch > 1000 {
		o.Batch = 1000
	}
	if o.Drain <= 0 {
		o.Drain = 60 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
}

// Latency summarises one histogram.
type Latency struct {
	Min  time.Duration `json:"min_ns"`
	Mean time.Duration `json:"mean_ns"`
	P50  time.Duration `json:"p50_ns"`
	P99  time.Duration `json:"p99_ns"`
	P999 time.Duration `json:"p999_ns"`
	Max  time.Duration `json:"max_ns"`
}

func summarise(h *Histogram) Latency {
	return Latency{Min: h.Min(), Mean: h.Mean(), P50: h.Quantile(0.5), P99: h.Quantile(0.99), P999: h.Quantile(0.999), Max: h.Max()}
}

// Phase is what one phase measured.
type Phase struct {
	Name string `json:"name"`
	// Offered is the open-loop rate, tasks/s (0 for closed-loop phases).
	Offered float64 `json:"offered_per_s,omitempty"`
	// Sent tasks were accepted by the API; Completed reached a terminal
	// state within the phase; Failed of those ended failed or cancelled;
	// Unanswered never finished before the drain timeout; Errors counts
	// tasks whose submit request failed.
	Sent       int `json:"sent"`
	Completed  int `json:"completed"`
	Failed     int `json:"failed"`
	Unanswered int `json:"unanswered"`
	Errors     int `json:"errors"`
	// Requests is how many submit requests carried them.
	Requests int `json:"requests"`
	// Enqueue is the submit rate of the burn-down's submit step, tasks/s.
	Enqueue float64 `json:"enqueue_per_s,omitempty"`
	// Throughput is Completed over Elapsed (for the burn-down, over the
	// drain alone).
	Throughput float64       `json:"throughput_per_s"`
	Elapsed    time.Duration `json:"elapsed_ns"`
	// CPUPer1k is CPU seconds (user+system, whole process: clients, API,
	// runners, collector, store) per 1000 completed tasks.
	CPUPer1k float64 `json:"cpu_s_per_1k"`
	// RSS is the resident set at the end of the phase, bytes.
	RSS      int64   `json:"rss_bytes"`
	Running  Latency `json:"submit_to_running"`
	Terminal Latency `json:"submit_to_terminal"`
	// Accepted (due → the API's created_at: client, HTTP and dispatch) and
	// Collected (the runner's finished_at → the collector's write: events
	// queue and collector) split the terminal latency into hops; what is
	// left between them is the tasks queue and the runner.
	Accepted  Latency `json:"submit_to_accepted"`
	Collected Latency `json:"finished_to_collected"`
}

// Report is the outcome of Run.
type Report struct {
	Backend     string `json:"backend"`
	Durability  string `json:"durability,omitempty"`
	Runners     int    `json:"runners"`
	Concurrency int    `json:"concurrency"`
	Clients     int    `json:"clients"`
	// Linger is Options.Linger.
	Linger     time.Duration `json:"linger_ns,omitempty"`
	GOMAXPROCS int           `json:"gomaxprocs"`
	Phases     []Phase       `json:"phases"`
	// PeakRSS is the process's high-water resident set (VmHWM), bytes.
	PeakRSS int64       `json:"peak_rss_bytes"`
	SDK     *SDKCeiling `json:"sdk_ceiling,omitempty"`
	Ratio   float64     `json:"drover_to_sdk,omitempty"`
	// SamePath is the raw SDK doing a Drover task's queue and table work;
	// RatioSamePath is Drover's steady tasks/s over its tasks/s.
	SamePath      *SamePath `json:"sdk_same_path,omitempty"`
	RatioSamePath float64   `json:"drover_to_sdk_same_path,omitempty"`
	// Requests are what Drover's phases sent to the AWS endpoint, per
	// completed task; SamePathRequests the same-path run's, per task.
	Requests         *Requests         `json:"requests,omitempty"`
	SamePathRequests *Requests         `json:"sdk_same_path_requests,omitempty"`
	Notes            []string          `json:"notes,omitempty"`
	Start            time.Time         `json:"start"`
	Config           map[string]string `json:"config,omitempty"`
}

var benchSeq atomic.Int64

// system is a running Drover: API, collector and (once started) runners.
type system struct {
	cfg     *benchEnv
	deps    *task.Resources
	base    string
	cl      *client.Client
	tracker atomic.Pointer[tracker]

	stop    context.CancelFunc
	wg      sync.WaitGroup
	runCtx  context.Context
	runStop context.CancelFunc
	runners sync.WaitGroup
	log     *slog.Logger
	opts    *Options
}

func (s *system) observe(sts []*task.Status) {
	if t := s.tracker.Load(); t != nil {
		for _, st := range sts {
			t.observe(st)
		}
	}
}

// benchEnv is what the bench runs on: the runners' settings (serve.Env)
// and the topic and subscription they do not read.
type benchEnv struct {
	Runner             serve.Env
	TasksTopic         string        `env:"DROVER_TASKS_TOPIC"`
	EventsSubscription string        `env:"DROVER_EVENTS_SUBSCRIPTION"`
	Retention          time.Duration `env:"DROVER_RETENTION" envDefault:"168h"`
	tmpDir             string        // the durable embedded backend's, removed at the end
}

// benchConfig returns the configuration of the backend.
func benchConfig(o *Options) (*benchEnv, error) {
	c := &benchEnv{}
	switch o.Backend {
	case Embedded:
		n := fmt.Sprintf("bench-%d-%d", os.Getpid(), benchSeq.Add(1))
		c.TasksTopic = "memq://" + n + "-tasks"
		c.EventsSubscription = "memq://" + n + "-events?visibility=30s"
		c.Retention = 168 * time.Hour
		c.Runner = serve.Env{
			TasksSubscription: "memq://" + n + "-tasks?visibility=30s",
			EventsTopic:       "memq://" + n + "-events",
			Bucket:            "mem://",
			Status:            embedded.StatusURL(n, ""),
			Heartbeat:         time.Second,
			Visibility:        30 * time.Second,
			Grace:             5 * time.Second,
			Log:               envconfig.Log{Level: "warn"},
			Priority:          task.Weighted, // DROVER_PRIORITY's default
		}
		switch o.Durability {
		case embedded.Memory:
		case embedded.Durable:
			dir := o.DataDir
			if dir == "" {
				tmp, err := os.MkdirTemp("", "drover-bench-")
				if err != nil {
					return nil, err
				}
				dir, c.tmpDir = tmp, tmp
			}
			q := "dir=" + url.QueryEscape(filepath.Join(dir, embedded.StateDir))
			c.TasksTopic += "?" + q
			c.Runner.TasksSubscription += "&" + q
			c.Runner.EventsTopic += "?lowspace=drain&sendsync=ordered&" + q
			c.EventsSubscription += "&lowspace=drain&sendsync=ordered&" + q
			c.Runner.Status += "&" + q
		default:
			return nil, fmt.Errorf("durability %q: want %s or %s", o.Durability, embedded.Durable, embedded.Memory)
		}
	case Env:
		if err := envconfig.Parse(c); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("backend %q: want embedded or env (for moto: go run ./internal/awstest/cmd/withmoto drover bench --backend env)", o.Backend)
	}
	c.Runner.Concurrency = o.Concurrency
	for _, v := range []struct{ name, val string }{{"DROVER_TASKS_TOPIC", c.TasksTopic}, {"DROVER_EVENTS_SUBSCRIPTION", c.EventsSubscription}} {
		if v.val == "" {
			return nil, fmt.Errorf("%s is required for drover bench --backend %s", v.name, o.Backend)
		}
	}
	if o.Runners < 1 {
		return nil, fmt.Errorf("--runners=%d: need at least 1", o.Runners)
	}
	if err := c.Runner.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// start opens the system and serves the API and the collector; runners
// start with startRunners.
func start(ctx context.Context, o *Options) (*system, error) {
	cfg, err := benchConfig(o)
	if err != nil {
		return nil, err
	}
	d, err := cfg.Runner.Open(ctx, o.Log)
	if err != nil {
		return nil, err
	}
	if d.Tasks, err = task.OpenTopic(ctx, cfg.TasksTopic); err != nil {
		d.Close(o.Log)
		return nil, fmt.Errorf("DROVER_TASKS_TOPIC: %w", err)
	}
	d.Store.Retention = cfg.Retention
	s := &system{cfg: cfg, deps: d, log: o.Log, opts: o}
	sctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	s.stop = stop
	addr := make(chan net.Addr, 1)
	s.wg.Go(func() {
		srv := api.New(d.Tasks, d.Archive, d.Store, o.Log, api.Config{})
		if err := api.Serve(sctx, "127.0.0.1:0", srv, o.Log, func(a net.Addr) { addr <- a }); err != nil {
			o.Log.Error("bench API", "err", err)
			close(addr)
		}
	})
	col := collector.New(d.Store, d.Archive, o.Log)
	s.wg.Go(func() {
		_ = collector.Receive(sctx, o.Log, "events", task.URLOpener(cfg.EventsSubscription), col.MaxBatch, func(ds []*task.Delivery) {
			s.observe(col.Process(context.WithoutCancel(sctx), ds))
		})
	})
	a, ok := <-addr
	if !ok {
		s.close()
		return nil, errors.New("bench: the API did not start")
	}
	s.base = "http://" + a.String()
	tr := &http.Transport{MaxIdleConnsPerHost: o.Clients * 2, MaxConnsPerHost: o.Clients * 2, DisableCompression: true}
	s.cl = client.New(s.base, client.WithHTTPClient(&http.Client{Transport: tr, Timeout: time.Minute}))
	return s, nil
}

func noop(context.Context, *task.Task) (task.Result, error) { return nil, nil }

func (s *system) startRunners() {
	if s.runCtx != nil {
		return
	}
	s.runCtx, s.runStop = context.WithCancel(context.Background())
	for i := range s.opts.Runners {
		r := s.cfg.Runner.NewRunner(s.deps, s.log, fmt.Sprintf("bench-%d", i+1), func(m *runner.Mux) { m.HandleFunc("noop", noop) })
		s.runners.Go(func() { _ = r.Run(s.runCtx, task.URLOpener(s.cfg.Runner.TasksSubscription)) })
	}
}

func (s *system) close() {
	if s.runStop != nil {
		s.runStop()
		s.runners.Wait()
	}
	time.Sleep(100 * time.Millisecond)
	s.stop()
	s.wg.Wait()
	s.deps.Close(s.log)
	// The durable queues give back their engine (closed with the store's
	// reference), then the temporary data dir goes.
	for _, u := range []string{s.cfg.TasksTopic, s.cfg.Runner.EventsTopic} {
		if name, ok := memqName(u); ok {
			if err := memq.Release(name); err != nil {
				s.log.Error("bench: release queue", "queue", name, "err", err)
			}
		}
	}
	if s.cfg.tmpDir != "" {
		_ = os.RemoveAll(s.cfg.tmpDir)
	}
}

// memqName is the queue of a durable memq URL.
func memqName(raw string) (string, bool) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "memq" || u.Query().Get("dir") == "" {
		return "", false
	}
	return path.Join(u.Host, u.Path), true
}

// tracker matches terminal documents to the due times of their tasks.
type tracker struct {
	mu       sync.Mutex
	due      map[string]time.Time // submitted, not yet terminal
	early    map[string]seen      // terminal before its submit returned
	running  Histogram
	terminal Histogram
	accepted Histogram
	collect  Histogram
	done     int
	failed   int
}

type seen struct {
	created, started, finished, at time.Time
	failed                         bool
}

// newTracker returns an empty tracker. Its maps hold only the tasks in
// flight, not the whole phase: Go maps never shrink, so sizing them to a
// million-task phase would be retained memory the bench adds to the
// system it measures.
func newTracker() *tracker {
	return &tracker{due: map[string]time.Time{}, early: map[string]seen{}}
}

func (t *tracker) observe(st *task.Status) {
	if !st.State.Terminal() {
		return
	}
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	x := seen{created: st.CreatedAt, started: st.StartedAt, finished: st.FinishedAt, at: now, failed: st.State != task.Succeeded}
	if due, ok := t.due[st.ID]; ok {
		delete(t.due, st.ID)
		t.record(due, x)
	} else {
		t.early[st.ID] = x
	}
}

func (t *tracker) record(due time.Time, x seen) {
	t.done++
	if x.failed {
		t.failed++
	}
	if !x.started.IsZero() {
		t.running.Record(x.started.Sub(due))
	}
	t.terminal.Record(x.at.Sub(due))
	if !x.created.IsZero() {
		t.accepted.Record(x.created.Sub(due))
	}
	if !x.finished.IsZero() {
		t.collect.Record(x.at.Sub(x.finished))
	}
}

// submitted registers tasks accepted by the API with their due times.
func (t *tracker) submitted(sts []*task.Status, due []time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, st := range sts {
		if x, ok := t.early[st.ID]; ok {
			delete(t.early, st.ID)
			t.record(due[i], x)
		} else {
			t.due[st.ID] = due[i]
		}
	}
}

func (t *tracker) counts() (done, pending int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.done, len(t.due)
}

// schedule hands out tasks to clients: all of them at once (rate 0) or
// task i at t0+i/rate.
type schedule struct {
	mu     sync.Mutex
	next   int
	count  int
	rate   float64
	t0     time.Time
	linger time.Duration
}

func (g *schedule) dueAt(i int) time.Time {
	if g.rate == 0 {
		return g.t0
	}
	return g.t0.Add(time.Duration(float64(i) / g.rate * float64(time.Second)))
}

// take returns the tasks [first, first+n) that are due, at most max; n is
// 0 with wait > 0 when none is due yet, and n is 0 with wait 0 when the
// schedule is done.
func (g *schedule) take(max int) (first, n int, wait time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.next >= g.count {
		return 0, 0, 0
	}
	due := g.count
	if g.rate > 0 {
		due = min(int(time.Since(g.t0).Seconds()*g.rate)+1, g.count)
		if g.linger > 0 && due-g.next < max {
			// Not a full request yet: send once the oldest due task
			// has waited the linger.
			if wait := time.Until(g.dueAt(g.next).Add(g.linger)); wait > 0 {
				return 0, 0, max1(wait)
			}
		}
	}
	n = min(due-g.next, max)
	if n <= 0 {
		return 0, 0, max1(time.Until(g.dueAt(g.next)))
	}
	first = g.next
	g.next += n
	return first, n, 0
}

func max1(d time.Duration) time.Duration { return max(d, time.Microsecond) }

// submit runs the schedule with the clients; it returns the tasks
// accepted and those whose requests failed.
func (s *system) submit(ctx context.Context, g *schedule, t *tracker) (sent, errs, requests int) {
	var (
		wg               sync.WaitGroup
		nSent, nEr, nReq atomic.Int64
		logged           sync.Once
	)
	for range s.opts.Clients {
		wg.Go(func() {
			specs := make([]task.Spec, 0, s.opts.Batch)
			due := make([]time.Time, 0, s.opts.Batch)
			p := newPacer()
			defer p.close()
			for ctx.Err() == nil {
				first, n, wait := g.take(s.opts.Batch)
				if n == 0 && wait == 0 {
					return
				}
				if n == 0 {
					p.sleep(wait)
					continue
				}
				specs, due = specs[:0], due[:0]
				for i := first; i < first+n; i++ {
					specs = append(specs, task.Spec{Function: "noop"})
					due = append(due, g.dueAt(i))
				}
				nReq.Add(1)
				sts, err := s.cl.SubmitBatch(ctx, specs)
				if err != nil {
					nEr.Add(int64(n))
					logged.Do(func() { s.log.Error("bench: submit failed", "err", err) })
					continue
				}
				t.submitted(sts, due)
				nSent.Add(int64(n))
			}
		})
	}
	wg.Wait()
	return int(nSent.Load()), int(nEr.Load()), int(nReq.Load())
}

// wait waits until every submitted task of t is terminal or the drain
// time passes after the last submit; it returns when the last finished.
func (s *system) wait(t *tracker, sent int) time.Time {
	deadline := time.Now().Add(s.opts.Drain)
	last := time.Now()
	prev := -1
	for time.Now().Before(deadline) {
		done, _ := t.counts()
		if done != prev {
			prev, last = done, time.Now()
		}
		if done >= sent {
			break
		}
		time.Sleep(time.Millisecond)
	}
	return last
}

// phase runs one schedule to its end and measures it.
func (s *system) phase(ctx context.Context, name string, count int, rate float64) Phase {
	t := newTracker()
	s.tracker.Store(t)
	cpu0 := cpuTime()
	g := &schedule{count: count, rate: rate, t0: time.Now(), linger: s.opts.Linger}
	sent, errs, reqs := s.submit(ctx, g, t)
	end := s.wait(t, sent)
	cpu := cpuTime() - cpu0
	p := s.result(name, rate, t, sent, errs, end.Sub(g.t0), cpu)
	p.Requests = reqs
	return p
}

func (s *system) result(name string, rate float64, t *tracker, sent, errs int, elapsed, cpu time.Duration) Phase {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := Phase{
		Name: name, Offered: rate, Sent: sent, Completed: t.done, Failed: t.failed,
		Unanswered: len(t.due), Errors: errs, Elapsed: elapsed, RSS: rss("VmRSS"),
		Running: summarise(&t.running), Terminal: summarise(&t.terminal),
		Accepted: summarise(&t.accepted), Collected: summarise(&t.collect),
	}
	if elapsed > 0 {
		p.Throughput = float64(t.done) / elapsed.Seconds()
	}
	if t.done > 0 {
		p.CPUPer1k = cpu.Seconds() / float64(t.done) * 1000
	}
	return p
}

// burnDown submits Tasks tasks with the runners stopped, then starts them
// and times the drain.
func (s *system) burnDown(ctx context.Context) Phase {
	n := s.opts.Tasks
	t := newTracker()
	s.tracker.Store(t)
	g := &schedule{count: n, t0: time.Now()}
	sent, errs, reqs := s.submit(ctx, g, t)
	enq := time.Since(g.t0)
	cpu0 := cpuTime()
	t0 := time.Now()
	s.startRunners()
	end := s.wait(t, sent)
	p := s.result("burn-down", 0, t, sent, errs, end.Sub(t0), cpuTime()-cpu0)
	p.Enqueue = float64(sent) / enq.Seconds()
	p.Requests = reqs
	return p
}

// Run starts the system, runs the phases and returns what they measured.
func Run(ctx context.Context, o Options) (*Report, error) {
	o.defaults()
	rep := &Report{
		Backend: o.Backend, Runners: o.Runners, Concurrency: o.Concurrency, Clients: o.Clients, Linger: o.Linger,
		GOMAXPROCS: runtime.GOMAXPROCS(0), Start: time.Now().UTC(),
	}
	if o.Backend == Embedded {
		rep.Durability = o.Durability
	}
	if o.CountRequests {
		stop, err := startCounting(&o)
		if err != nil {
			return nil, err
		}
		defer stop()
	}
	for _, r := range []struct {
		path, what string
		start      func(io.Writer) error
		stop       func()
	}{
		{o.CPUProfile, "cpu profile", pprof.StartCPUProfile, pprof.StopCPUProfile},
		{o.Trace, "trace", trace.Start, trace.Stop},
	} {
		if r.path == "" {
			continue
		}
		f, err := os.Create(r.path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", r.what, err)
		}
		defer f.Close()
		if err := r.start(f); err != nil {
			return nil, fmt.Errorf("%s: %w", r.what, err)
		}
		defer r.stop()
	}
	s, err := start(ctx, &o)
	if err != nil {
		return nil, err
	}
	defer s.close()
	rep.Config = map[string]string{
		"tasks_topic": s.cfg.TasksTopic, "events_topic": s.cfg.Runner.EventsTopic,
		"status": s.cfg.Runner.Status, "bucket": s.cfg.Runner.Bucket,
	}
	if !o.SkipBurn {
		rep.Phases = append(rep.Phases, s.burnDown(ctx))
	}
	s.startRunners()
	if !o.SkipSteady && ctx.Err() == nil {
		rep.Phases = append(rep.Phases, s.phase(ctx, "steady", o.Tasks, 0))
	}
	for _, r := range o.Rates {
		if ctx.Err() != nil || r <= 0 {
			break
		}
		n := max(int(float64(r)*o.Duration.Seconds()), 1)
		rep.Phases = append(rep.Phases, s.phase(ctx, "rate "+strconv.Itoa(r)+"/s", n, float64(r)))
	}
	if (o.SDKCeiling || o.counter != nil) && ctx.Err() == nil {
		rawCeilings(ctx, &o, rep)
	}
	if o.MemProfile != "" {
		if err := writeHeapProfile(o.MemProfile); err != nil {
			rep.Notes = append(rep.Notes, "heap profile: "+err.Error())
		}
	}
	rep.PeakRSS = rss("VmHWM")
	return rep, ctx.Err()
}

// writeHeapProfile writes a heap profile after a GC, so that the in-use
// figures are what the system retains.
func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	runtime.GC()
	if err := pprof.WriteHeapProfile(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rss reads a size field (VmRSS, VmHWM) of /proc/self/status, in bytes;
// 0 where there is no /proc.
func rss(field string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
