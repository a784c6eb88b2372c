package main

import (
	"bytes"
	"fmt"
	"net/http"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape reads the dev process's /metrics.
func (b *devBundle) scrape(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	code, raw := b.do(t, "GET", "/metrics", "", nil, nil)
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", code, raw)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, raw)
	}
	return fams
}

// sample sums the counter, or the histogram's sample count, of the
// series of name whose labels include want.
func sample(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	f := fams[name]
	if f == nil {
		return 0
	}
	var sum float64
metrics:
	for _, m := range f.Metric {
		labels := map[string]string{}
		for _, l := range m.Label {
			labels[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if labels[k] != v {
				continue metrics
			}
		}
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		}
	}
	return sum
}

// TestDevMetrics is acceptance 2 of issue 17: /metrics scraped before and
// after 500 tasks (400 succeed at once, 50 fail for good, 50 fail once and
// succeed on their retry) moves each counter by exactly those numbers, and
// the histograms by one sample per task (per attempt for run time).
func TestDevMetrics(t *testing.T) {
	b := setupDev(t, func(e *devEnv) { e.Runner.Concurrency, e.Runner.Queues = 16, "default,metrics" })
	// A warm-up task, so that every series exists before the first scrape.
	warm := b.submitBatch(t, []map[string]any{{"function": "echo", "queue": "metrics"}})
	b.awaitTerminal(t, []string{warm[0].ID}, time.Minute)

	type key struct{ name, fn, state string }
	names := []key{
		{"drover_tasks_submitted_total", "", ""},
		{"drover_runner_tasks_started_total", "", ""},
		{"drover_runner_tasks_succeeded_total", "", ""},
		{"drover_runner_tasks_failed_total", "", ""},
		{"drover_runner_tasks_retried_total", "", ""},
		{"drover_runner_run_seconds", "", ""},
		{"drover_tasks_terminal_total", "", "succeeded"},
		{"drover_tasks_terminal_total", "", "failed"},
		{"drover_task_queue_wait_seconds", "", ""},
		{"drover_task_submit_to_terminal_seconds", "", ""},
	}
	read := func(fams map[string]*dto.MetricFamily) map[key]float64 {
		out := map[key]float64{}
		for _, k := range names {
			want := map[string]string{"queue": "metrics"}
			if k.state != "" {
				want["state"] = k.state
			}
			out[k] = sample(fams, k.name, want)
		}
		return out
	}
	before := read(b.scrape(t))

	var specs []map[string]any
	for i := range 500 {
		switch {
		case i%10 == 0:
			specs = append(specs, map[string]any{"function": "fail", "queue": "metrics", "max_attempts": 1, "args": map[string]any{"message": "no"}})
		case i%10 == 5:
			specs = append(specs, map[string]any{"function": "fail", "queue": "metrics", "max_attempts": 2, "args": map[string]any{"times": 1}})
		default:
			specs = append(specs, map[string]any{"function": "echo", "queue": "metrics", "args": i})
		}
	}
	var ids []string
	for i := 0; i < len(specs); i += 250 {
		for _, st := range b.submitBatch(t, specs[i:i+250]) {
			ids = append(ids, st.ID)
		}
	}
	sts := b.awaitTerminal(t, ids, 3*time.Minute)
	succeeded, failed := 0, 0
	for _, st := range sts {
		switch st.State {
		case "succeeded":
			succeeded++
		case "failed":
			failed++
		}
	}
	if succeeded != 450 || failed != 50 {
		t.Fatalf("API says %d succeeded and %d failed, want 450 and 50", succeeded, failed)
	}

	want := map[key]float64{
		names[0]: 500, // submitted
		names[1]: 550, // attempts started: 50 tasks ran twice
		names[2]: 450,
		names[3]: 50,
		names[4]: 50,
		names[5]: 550, // one run-time sample per attempt
		names[6]: 450,
		names[7]: 50,
		names[8]: 500, // one queue-wait sample per task
		names[9]: 500,
	}
	// The collector counts a task right after the write the API read, so
	// give the last few a moment; then the figures must be exact.
	var moved map[key]float64
	deadline := time.Now().Add(30 * time.Second)
	for {
		after := read(b.scrape(t))
		moved = map[key]float64{}
		done := true
		for k, w := range want {
			moved[k] = after[k] - before[k]
			if moved[k] < w {
				done = false
			}
		}
		if done || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, k := range names {
		if moved[k] != want[k] {
			t.Errorf("%s%s moved by %v, want %v", k.name, fmtState(k.state), moved[k], want[k])
		}
	}
	fams := b.scrape(t)
	if n := sample(fams, "drover_runners_online", nil); n != 2 {
		t.Errorf("drover_runners_online = %v, want the 2 dev runners", n)
	}
	if _, ok := fams["drover_tasks_queue_depth"]; !ok {
		t.Error("drover_tasks_queue_depth missing on memq")
	} else if n := sample(fams, "drover_tasks_queue_depth", nil); n != 0 {
		t.Errorf("drover_tasks_queue_depth = %v with every task finished, want 0", n)
	}
}

func fmtState(s string) string {
	if s == "" {
		return ""
	}
	return fmt.Sprintf("{state=%q}", s)
}
