package bench

import (
	"math"
	"math/bits"
	"time"
)

// subBits sets the histogram's precision: each power-of-two range of
// values is split into 2^subBits linear buckets, so a recorded value is
// reported within 1/2^subBits (0.8%) of itself, as in HdrHistogram.
const subBits = 7

const subCount = 1 << subBits

// Histogram records durations in microseconds in log-linear buckets:
// constant memory, constant-time Record, percentiles within 0.8%. The
// zero value is ready to use; it is not safe for concurrent use.
type Histogram struct {
	counts   []uint64
	n        uint64
	sum      float64 // µs
	min, max int64   // µs
}

// bucket returns the index of value v (µs, >= 0).
func bucket(v int64) int {
	if v < subCount {
		return int(v)
	}
	// The top subBits+1 bits of v select the bucket: the exponent
	// (position of the highest bit) picks the range, the next subBits
	// bits the bucket inside it.
	e := bits.Len64(uint64(v)) - subBits - 1
	return (e+1)*subCount + int(v>>e) - subCount
}

// lowest returns the smallest value of bucket i; highest the largest.
func lowest(i int) int64 {
	if i < subCount {
		return int64(i)
	}
	e := i/subCount - 1
	return int64(i%subCount+subCount) << e
}

func highest(i int) int64 { return lowest(i+1) - 1 }

// Record adds one duration (negative durations count as zero).
func (h *Histogram) Record(d time.Duration) {
	v := max(d.Microseconds(), 0)
	i := bucket(v)
	if i >= len(h.counts) {
		h.counts = append(h.counts, make([]uint64, i+1-len(h.counts))...)
	}
	h.counts[i]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += float64(v)
}

// Merge adds every value recorded in o.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	if len(o.counts) > len(h.counts) {
		h.counts = append(h.counts, make([]uint64, len(o.counts)-len(h.counts))...)
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.n += o.n
	h.sum += o.sum
}

// Count is the number of recorded values.
func (h *Histogram) Count() uint64 { return h.n }

// Min, Max and Mean of the recorded values (zero when empty).
func (h *Histogram) Min() time.Duration { return time.Duration(h.min) * time.Microsecond }
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) * time.Microsecond }
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum/float64(h.n)) * time.Microsecond
}

// Quantile returns the value at quantile q in [0, 1]: the highest value
// of the bucket holding the ceil(q·n)-th smallest value, capped by Max, so
// it never understates a latency.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return time.Duration(min(highest(i), h.max)) * time.Microsecond
		}
	}
	return h.Max()
}
