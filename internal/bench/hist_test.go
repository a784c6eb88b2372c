package bench

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBucketBounds(t *testing.T) {
	for _, v := range []int64{0, 1, 127, 128, 129, 255, 256, 1000, 12345, 1 << 20, 1<<40 + 7} {
		i := bucket(v)
		if lo, hi := lowest(i), highest(i); v < lo || v > hi {
			t.Errorf("value %d in bucket %d [%d, %d]", v, i, lo, hi)
		}
		if hi, lo := highest(i), lowest(i); hi-lo > max(lo/subCount, 0) {
			t.Errorf("bucket %d [%d, %d] wider than 1/%d of its values", i, lo, hi, subCount)
		}
	}
	for i := 0; i < 40*subCount; i++ {
		if bucket(lowest(i)) != i || bucket(highest(i)) != i {
			t.Fatalf("bucket %d: bounds [%d, %d] map to %d, %d", i, lowest(i), highest(i), bucket(lowest(i)), bucket(highest(i)))
		}
	}
}

func TestQuantiles(t *testing.T) {
	tests := []struct {
		name   string
		values []time.Duration
		q      float64
		want   time.Duration
	}{
		{"empty", nil, 0.5, 0},
		{"one", []time.Duration{3 * time.Millisecond}, 0.99, 3 * time.Millisecond},
		{"median of 1..100 µs", seq(100, time.Microsecond), 0.5, 50 * time.Microsecond},
		{"p99 of 1..100 µs", seq(100, time.Microsecond), 0.99, 99 * time.Microsecond},
		{"max", seq(100, time.Microsecond), 1, 100 * time.Microsecond},
		{"negative counts as zero", []time.Duration{-time.Second}, 0.5, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Histogram
			for _, v := range tt.values {
				h.Record(v)
			}
			if got := h.Quantile(tt.q); got != tt.want {
				t.Errorf("Quantile(%v) = %v, want %v", tt.q, got, tt.want)
			}
		})
	}
}

func seq(n int, unit time.Duration) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = time.Duration(i+1) * unit
	}
	return out
}

// TestQuantileAccuracy checks percentiles of a wide random sample against
// the exact ones: never below, and at most 1/subCount above.
func TestQuantileAccuracy(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var a, b Histogram
	vals := make([]int64, 0, 100000)
	for i := range 100000 {
		v := int64(r.ExpFloat64() * 5000) // µs, mean 5 ms
		vals = append(vals, v)
		if i%2 == 0 {
			a.Record(time.Duration(v) * time.Microsecond)
		} else {
			b.Record(time.Duration(v) * time.Microsecond)
		}
	}
	a.Merge(&b)
	slices.Sort(vals)
	if a.Count() != uint64(len(vals)) {
		t.Fatalf("count %d, want %d", a.Count(), len(vals))
	}
	if a.Min() != time.Duration(vals[0])*time.Microsecond || a.Max() != time.Duration(vals[len(vals)-1])*time.Microsecond {
		t.Errorf("min/max %v/%v, want %dµs/%dµs", a.Min(), a.Max(), vals[0], vals[len(vals)-1])
	}
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		exact := vals[int(q*float64(len(vals)))-1]
		got := a.Quantile(q).Microseconds()
		if got < exact || float64(got-exact) > float64(exact)/subCount+1 {
			t.Errorf("p%v = %dµs, exact %dµs", q*100, got, exact)
		}
	}
}
