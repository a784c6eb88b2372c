package runner

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/droverhq/drover/pkg/task"
)

// TestBackoffSchedule: with the default Config the wait before a retry
// starts at 1 s and doubles per attempt up to 5 min, with jitter: each
// wait lies in [d/2, d] for the schedule's d, and the waits spread over
// that range (500 draws all in one quarter of it would be a 1 in 10^62
// chance).
func TestBackoffSchedule(t *testing.T) {
	r := setupProcess(t, Config{}, nil).r
	cases := []struct {
		attempt int
		d       time.Duration
	}{
		{1, time.Second},
		{2, 2 * time.Second},
		{3, 4 * time.Second},
		{4, 8 * time.Second},
		{9, 256 * time.Second},
		{10, 5 * time.Minute}, // 512 s, capped
		{30, 5 * time.Minute},
		{1 << 20, 5 * time.Minute}, // no overflow past the cap
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("attempt %d", c.attempt), func(t *testing.T) {
			lo, hi := c.d, time.Duration(0)
			for range 500 {
				w := r.backoff(c.attempt)
				if w < c.d/2 || w > c.d {
					t.Fatalf("backoff(%d) = %v, want within [%v, %v]", c.attempt, w, c.d/2, c.d)
				}
				lo, hi = min(lo, w), max(hi, w)
			}
			if q := c.d / 8; lo > c.d/2+q || hi < c.d-q {
				t.Errorf("backoff(%d) spread over [%v, %v] only, want jitter across [%v, %v]", c.attempt, lo, hi, c.d/2, c.d)
			}
		})
	}
}

// TestRetryWaitsBackoff: a failed first attempt is retried after the
// first step of the schedule, as wired: its retrying event says when, no
// sooner than half a second on, and the message comes back no sooner
// than that, and well before the 5 min cap.
func TestRetryWaitsBackoff(t *testing.T) {
	e := setupProcess(t, Config{}, func(m *Mux) {
		m.HandleFunc("boom", func(context.Context, *task.Task) (task.Result, error) { return nil, errors.New("boom") })
	})
	id := e.submit(t, "boom", nil, 1)[0]
	d := e.receive(t, 1)[0]
	start := time.Now()
	if o := e.r.Process(context.Background(), d); o != Retry {
		t.Fatalf("outcome %d, want Retry", o)
	}
	evs := e.drainEvents(t)
	var retrying *task.Event
	for _, ev := range evs {
		if ev.TaskID == id && ev.Phase == task.PhaseRetrying {
			retrying = ev
		}
	}
	if retrying == nil {
		t.Fatalf("no retrying event in %v", phases(evs, id))
	}
	if wait := retrying.NextAttemptAt.Sub(retrying.At); wait < 500*time.Millisecond {
		t.Errorf("next attempt %v after the attempt's event, want at least 500ms", wait)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	back, err := e.sub.ReceiveBatch(ctx, 1)
	for err == nil && len(back) == 0 {
		back, err = e.sub.ReceiveBatch(ctx, 1)
	}
	if err != nil {
		t.Fatalf("message not back within a minute: %v", err)
	}
	if el := time.Since(start); el < 500*time.Millisecond {
		t.Errorf("message back %v after the attempt began, before the backoff's 500ms floor", el)
	}
	if n := back[0].Attempt(); n != 2 {
		t.Errorf("redelivery attempt %d, want 2", n)
	}
}
