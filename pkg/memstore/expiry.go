package memstore

import (
	"sync"

	"github.com/google/btree"
)

// expiries indexes the keys of documents that carry an expiry, by the
// second they expire at, marking those that count against the cap. One
// index serves both the sweep and the cap: two indexes of the same keys
// were twice the memory for every GC cycle to scan, and twice the work
// on every write.
type expiries struct {
	mu      sync.Mutex
	buckets map[int64]map[any]bool // second → key → counts against the cap
	order   *btree.BTreeG[int64]   // the seconds of buckets, ascending
	count   int                    // keys in buckets
	capped  int                    // of them, those that count against the cap
}

type dueKey struct {
	key any
	at  int64
}

func newExpiries() *expiries {
	return &expiries{buckets: map[int64]map[any]bool{}, order: btree.NewOrderedG[int64](32)}
}

// change moves key from the bucket of old to that of next (0: none),
// with whether it counts against the cap before and after.
func (e *expiries) change(key any, old int64, oldCapped bool, next int64, nextCapped bool) {
	if old == next && oldCapped == nextCapped {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if b := e.buckets[old]; old != 0 && b != nil {
		if capped, ok := b[key]; ok {
			e.take(b, old, key, capped)
		}
	}
	if next != 0 {
		b := e.buckets[next]
		if b == nil {
			b = map[any]bool{}
			e.buckets[next] = b
			e.order.ReplaceOrInsert(next)
		}
		if capped, ok := b[key]; ok { // indexed already: count it once
			e.count--
			if capped {
				e.capped--
			}
		}
		b[key] = nextCapped
		e.count++
		if nextCapped {
			e.capped++
		}
	}
}

// take removes key from b, the bucket of second at, and b if it empties.
// Call with e.mu held.
func (e *expiries) take(b map[any]bool, at int64, key any, capped bool) {
	e.uncount(b, key, capped)
	if len(b) == 0 {
		delete(e.buckets, at)
		e.order.Delete(at)
	}
}

// uncount removes key from bucket b. Call with e.mu held.
func (e *expiries) uncount(b map[any]bool, key any, capped bool) {
	delete(b, key)
	e.count--
	if capped {
		e.capped--
	}
}

// over reports whether more than max keys count against the cap.
func (e *expiries) over(max int) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.capped > max
}

// due takes out of the index, and returns, the keys that expire at or
// before now and, while more than max (if positive) count against the
// cap, those of them that expire soonest.
func (e *expiries) due(now int64, max int) []dueKey {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []dueKey
	var emptied []int64
	e.order.Ascend(func(at int64) bool {
		if at > now && !(max > 0 && e.capped > max) {
			return false
		}
		b := e.buckets[at]
		for k, capped := range b {
			if at > now {
				if e.capped <= max {
					break
				}
				if !capped {
					continue // not due, and the cap does not drop it
				}
			}
			out = append(out, dueKey{k, at})
			e.uncount(b, k, capped)
		}
		if len(b) == 0 { // the tree is not changed while it is walked
			delete(e.buckets, at)
			emptied = append(emptied, at)
		}
		return true
	})
	for _, at := range emptied {
		e.order.Delete(at)
	}
	return out
}
