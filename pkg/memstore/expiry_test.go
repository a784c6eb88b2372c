package memstore

import (
	"slices"
	"testing"
)

// TestExpiriesOneIndex: one index serves the sweep (everything due, capped
// or not) and the cap (only capped keys, soonest first), and keeps both
// counts through moves, flag changes and removals.
func TestExpiriesOneIndex(t *testing.T) {
	e := newExpiries()
	e.change("runner", 0, false, 10, false) // not capped, expires soonest
	e.change("a", 0, false, 20, true)
	e.change("b", 0, false, 30, true)
	e.change("c", 0, false, 40, true)
	e.change("c", 40, true, 40, true) // no change
	if e.count != 4 || e.capped != 3 {
		t.Fatalf("count %d capped %d, want 4 3", e.count, e.capped)
	}
	// Over a cap of 1: the two soonest capped keys go, not the runner's.
	got := keys(e.due(0, 1))
	if !slices.Equal(got, []any{"a", "b"}) || e.capped != 1 || e.count != 2 {
		t.Fatalf("cap trim took %v, count %d capped %d", got, e.count, e.capped)
	}
	if e.over(1) {
		t.Fatal("over the cap after trimming")
	}
	// A key stops counting against the cap in place, then moves.
	e.change("c", 40, true, 40, false)
	if e.capped != 0 || e.count != 2 {
		t.Fatalf("flag change: count %d capped %d", e.count, e.capped)
	}
	e.change("c", 40, false, 50, true)
	// The sweep takes whatever is due, capped or not.
	got = keys(e.due(45, 0))
	if !slices.Equal(got, []any{"runner"}) || e.count != 1 || e.capped != 1 {
		t.Fatalf("sweep took %v, count %d capped %d", got, e.count, e.capped)
	}
	e.change("c", 50, true, 0, false)
	if e.count != 0 || e.capped != 0 || len(e.buckets) != 0 || e.order.Len() != 0 {
		t.Fatalf("not empty after removal: count %d capped %d buckets %d", e.count, e.capped, len(e.buckets))
	}
}

func keys(due []dueKey) []any {
	var out []any
	for _, d := range due {
		out = append(out, d.key)
	}
	return out
}
