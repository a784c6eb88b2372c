package task

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"gocloud.dev/docstore"
)

// Stats is an aggregate of the task documents in the store: counts by
// state, function and queue, and per-minute throughput and latency over
// the last hour (GET /v1/stats, drover stats, the dashboard's overview).
type Stats struct {
	// Total is the number of task documents counted.
	Total int `json:"total"`
	// States counts tasks by state; every state is present.
	States map[State]int `json:"states"`
	// Functions and Queues count tasks by state per function and queue.
	Functions map[string]map[State]int `json:"functions"`
	Queues    map[string]map[State]int `json:"queues"`
	// Minutes covers the last hour, oldest minute first: tasks that
	// finished in each minute and their latencies.
	Minutes []MinuteStats `json:"minutes"`
	// Truncated says the store held more tasks than a stats scan reads
	// (MaxStatsScan); the counts cover the newest of them.
	Truncated bool `json:"truncated,omitempty"`
	// RunnersOnline is the number of runners seen recently (set by the
	// API from heartbeats, not by Store.Stats).
	RunnersOnline int `json:"runners_online"`
	// At is when the figures were taken.
	At time.Time `json:"at"`
}

// MinuteStats is one minute of finished tasks.
type MinuteStats struct {
	Start     time.Time `json:"start"`
	Succeeded int       `json:"succeeded"`
	Failed    int       `json:"failed"`
	Cancelled int       `json:"cancelled"`
	// Queue wait (created → started) and run time (started → finished)
	// of the tasks that finished this minute, in milliseconds.
	QueueWaitP50 float64 `json:"queue_wait_p50_ms"`
	QueueWaitP95 float64 `json:"queue_wait_p95_ms"`
	RunTimeP50   float64 `json:"run_time_p50_ms"`
	RunTimeP95   float64 `json:"run_time_p95_ms"`
}

// States lists every state in the order of a task's life.
var States = []State{Queued, Running, Retrying, Succeeded, Failed, Cancelled}

// MaxStatsScan bounds how many task documents Stats reads.
const MaxStatsScan = 200_000

// Stats reads every task document (up to MaxStatsScan, newest first)
// and aggregates it as of now. It is a scan: its cost grows with the
// number of tasks kept (DROVER_RETENTION).
func (s *Store) Stats(ctx context.Context, now time.Time) (*Stats, error) {
	out := &Stats{
		States: map[State]int{}, Functions: map[string]map[State]int{}, Queues: map[string]map[State]int{},
		At: now.UTC(),
	}
	for _, st := range States {
		out.States[st] = 0
	}
	first := now.Truncate(time.Minute).Add(-59 * time.Minute)
	out.Minutes = make([]MinuteStats, 60)
	waits := make([][]float64, 60)
	runs := make([][]float64, 60)
	for i := range out.Minutes {
		out.Minutes[i].Start = first.Add(time.Duration(i) * time.Minute).UTC()
	}
	iter := s.coll.Query().Where("kind", "=", KindTask).Where("id", "<", "~").
		OrderBy("id", docstore.Descending).Limit(MaxStatsScan+1).
		Get(ctx, "id", "function", "queue", "state", "created_at", "started_at", "finished_at")
	defer iter.Stop()
	for {
		var st Status
		err := iter.Next(ctx, &st)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("stats: %w", err)
		}
		if out.Total == MaxStatsScan {
			out.Truncated = true
			break
		}
		out.Total++
		out.States[st.State]++
		count(out.Functions, st.Function, st.State)
		count(out.Queues, st.Queue, st.State)
		if !st.State.Terminal() || st.FinishedAt.Before(first) || st.FinishedAt.After(now) {
			continue
		}
		i := int(st.FinishedAt.Sub(first) / time.Minute)
		if i < 0 || i >= 60 {
			continue
		}
		m := &out.Minutes[i]
		switch st.State {
		case Succeeded:
			m.Succeeded++
		case Failed:
			m.Failed++
		case Cancelled:
			m.Cancelled++
		}
		if !st.StartedAt.IsZero() {
			if !st.CreatedAt.IsZero() {
				waits[i] = append(waits[i], ms(st.StartedAt.Sub(st.CreatedAt)))
			}
			runs[i] = append(runs[i], ms(st.FinishedAt.Sub(st.StartedAt)))
		}
	}
	for i := range out.Minutes {
		m := &out.Minutes[i]
		m.QueueWaitP50, m.QueueWaitP95 = quantile(waits[i], .5), quantile(waits[i], .95)
		m.RunTimeP50, m.RunTimeP95 = quantile(runs[i], .5), quantile(runs[i], .95)
	}
	return out, nil
}

func count(m map[string]map[State]int, key string, st State) {
	c := m[key]
	if c == nil {
		c = map[State]int{}
		m[key] = c
	}
	c[st]++
}

func ms(d time.Duration) float64 { return float64(max(d, 0).Microseconds()) / 1000 }

// quantile returns the q-quantile of xs (nearest rank), 0 when empty.
func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	i := int(q*float64(len(xs))+0.5) - 1
	return xs[min(max(i, 0), len(xs)-1)]
}
