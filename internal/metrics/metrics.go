// Package metrics holds the Prometheus metrics of Drover's long-lived
// parts: dispatch (submitted, cancelled, retried, queue depth, runners
// online), runners (started, succeeded, failed, retried, run time) and
// the collector (terminal counts, queue wait, submit→terminal,
// dead-lettered). Each part's metrics are a small struct whose methods do
// nothing on a nil receiver, so a part built without a registry pays
// nothing. Registering the same part twice on one registry (N runners in
// drover dev) shares one set of series.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Namespace prefixes every metric name.
const Namespace = "drover"

// Buckets are the histograms' upper bounds in seconds: 1 ms to about an hour.
var Buckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600}

// NewRegistry returns a registry with the Go runtime and process
// collectors, which each part then adds its own metrics to.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Handler serves reg in the Prometheus text format.
func Handler(reg prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

// register registers c on reg, or returns the equal collector already
// registered there.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if old, ok := are.ExistingCollector.(C); ok {
				return old
			}
		}
		panic(err)
	}
	return c
}

func counter(reg prometheus.Registerer, name, help string, labels ...string) *prometheus.CounterVec {
	return register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help}, labels))
}

func histogram(reg prometheus.Registerer, name, help string, labels ...string) *prometheus.HistogramVec {
	return register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: name, Help: help, Buckets: Buckets}, labels))
}

// Dispatch is the dispatch function's metrics.
type Dispatch struct {
	submitted, cancelled, retried *prometheus.CounterVec
}

// NewDispatch registers dispatch's metrics on reg; nil reg returns nil.
func NewDispatch(reg prometheus.Registerer) *Dispatch {
	if reg == nil {
		return nil
	}
	return &Dispatch{
		submitted: counter(reg, "tasks_submitted_total", "Tasks accepted and enqueued by dispatch.", "function", "queue"),
		cancelled: counter(reg, "tasks_cancelled_total", "Tasks cancelled through the API.", "function", "queue"),
		retried:   counter(reg, "tasks_retried_total", "Tasks re-submitted by retry or dead-letter redrive (the new tasks).", "function", "queue"),
	}
}

// Submitted counts one enqueued task.
func (m *Dispatch) Submitted(function, queue string) {
	if m != nil {
		m.submitted.WithLabelValues(function, queue).Inc()
	}
}

// Cancelled counts one cancellation.
func (m *Dispatch) Cancelled(function, queue string) {
	if m != nil {
		m.cancelled.WithLabelValues(function, queue).Inc()
	}
}

// Retried counts one task re-submitted as a retry or redrive.
func (m *Dispatch) Retried(function, queue string) {
	if m != nil {
		m.retried.WithLabelValues(function, queue).Inc()
	}
}

// Gauge registers a gauge whose value f reads at each scrape (queue
// depth, runners online); f's error leaves the sample out.
func Gauge(reg prometheus.Registerer, name, help string, f func() (float64, bool)) {
	if reg == nil {
		return
	}
	register(reg, &funcGauge{desc: prometheus.NewDesc(Namespace+"_"+name, help, nil, nil), f: f})
}

type funcGauge struct {
	desc *prometheus.Desc
	f    func() (float64, bool)
}

func (g *funcGauge) Describe(ch chan<- *prometheus.Desc) { ch <- g.desc }
func (g *funcGauge) Collect(ch chan<- prometheus.Metric) {
	if v, ok := g.f(); ok {
		ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, v)
	}
}

// Runner is a runner's metrics; the runners of one process share them.
type Runner struct {
	started, succeeded, failed, retried *prometheus.CounterVec
	run                                 *prometheus.HistogramVec
}

// NewRunner registers the runner metrics on reg; nil reg returns nil.
func NewRunner(reg prometheus.Registerer) *Runner {
	if reg == nil {
		return nil
	}
	return &Runner{
		started:   counter(reg, "runner_tasks_started_total", "Attempts a runner started running (a function was called).", "function", "queue"),
		succeeded: counter(reg, "runner_tasks_succeeded_total", "Attempts that succeeded.", "function", "queue"),
		failed:    counter(reg, "runner_tasks_failed_total", "Attempts that failed for good (no retry left, permanent, gave up).", "function", "queue"),
		retried:   counter(reg, "runner_tasks_retried_total", "Attempts that failed and will be retried after a backoff.", "function", "queue"),
		run:       histogram(reg, "runner_run_seconds", "Time a function ran, per attempt.", "function", "queue"),
	}
}

// Started counts one attempt started.
func (m *Runner) Started(function, queue string) {
	if m != nil {
		m.started.WithLabelValues(function, queue).Inc()
	}
}

// Ran records how long one attempt's function ran.
func (m *Runner) Ran(function, queue string, d time.Duration) {
	if m != nil {
		m.run.WithLabelValues(function, queue).Observe(d.Seconds())
	}
}

// Succeeded, Failed and Retried count one attempt's outcome.
func (m *Runner) Succeeded(function, queue string) {
	if m != nil {
		m.succeeded.WithLabelValues(function, queue).Inc()
	}
}

// Failed counts an attempt that failed for good.
func (m *Runner) Failed(function, queue string) {
	if m != nil {
		m.failed.WithLabelValues(function, queue).Inc()
	}
}

// Retried counts an attempt that will be retried.
func (m *Runner) Retried(function, queue string) {
	if m != nil {
		m.retried.WithLabelValues(function, queue).Inc()
	}
}

// Collector is the collector's metrics: what it saw reach the store.
type Collector struct {
	terminal, deadLettered *prometheus.CounterVec
	queueWait, total       *prometheus.HistogramVec
}

// NewCollector registers the collector metrics on reg; nil reg returns nil.
func NewCollector(reg prometheus.Registerer) *Collector {
	if reg == nil {
		return nil
	}
	return &Collector{
		terminal:     counter(reg, "tasks_terminal_total", "Tasks whose status the collector moved to a terminal state, once per task.", "function", "queue", "state"),
		deadLettered: counter(reg, "tasks_dead_lettered_total", "Task messages the dead-letter sweeper found.", "function", "queue"),
		queueWait:    histogram(reg, "task_queue_wait_seconds", "From submission to the start of the attempt that ended the task.", "function", "queue"),
		total:        histogram(reg, "task_submit_to_terminal_seconds", "From submission to the terminal status.", "function", "queue"),
	}
}

// Terminal records a task that reached state: once per task.
func (m *Collector) Terminal(function, queue, state string, created, started, finished time.Time) {
	if m == nil {
		return
	}
	m.terminal.WithLabelValues(function, queue, state).Inc()
	if created.IsZero() || finished.IsZero() {
		return
	}
	m.total.WithLabelValues(function, queue).Observe(max(finished.Sub(created), 0).Seconds())
	if !started.IsZero() {
		m.queueWait.WithLabelValues(function, queue).Observe(max(started.Sub(created), 0).Seconds())
	}
}

// DeadLettered counts one task message found in the dead-letter queue.
func (m *Collector) DeadLettered(function, queue string) {
	if m != nil {
		m.deadLettered.WithLabelValues(function, queue).Inc()
	}
}

// Serve serves reg at /metrics on addr until ctx is done: the runner's
// and the collector's own endpoint (DROVER_METRICS_ADDR), where they run
// as processes of their own. ready, if not nil, receives the bound
// address.
func Serve(ctx context.Context, addr string, reg prometheus.Gatherer, log *slog.Logger, ready func(net.Addr)) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("DROVER_METRICS_ADDR=%s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", Handler(reg))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	if ready != nil {
		ready(l.Addr())
	}
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}()
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Warn("metrics endpoint stopped", "err", err)
		return err
	}
	return nil
}
