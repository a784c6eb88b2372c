package memstore

import (
	"sync"

	"github.com/google/btree"
)

// expiries indexes the keys of documents that carry an expiry, by the
// second they expire at.
type expiries struct {
	mu      sync.Mutex
	buckets map[int64]map[any]struct{}
	order   *btree.BTreeG[int64] // the seconds of buckets, ascending
	count   int                  // keys in buckets
}

type dueKey struct {
	key any
	at  int64
}

func newExpiries() *expiries {
	return &expiries{buckets: map[int64]map[any]struct{}{}, order: btree.NewOrderedG[int64](32)}
}

// change moves key from the bucket of old to that of next (0: none).
func (e *expiries) change(key any, old, next int64) {
	if old == next {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if b := e.buckets[old]; old != 0 && b != nil {
		if _, ok := b[key]; ok {
			delete(b, key)
			e.count--
			if len(b) == 0 {
				delete(e.buckets, old)
				e.order.Delete(old)
			}
		}
	}
	if next != 0 {
		b := e.buckets[next]
		if b == nil {
			b = map[any]struct{}{}
			e.buckets[next] = b
			e.order.ReplaceOrInsert(next)
		}
		if _, ok := b[key]; !ok {
			b[key] = struct{}{}
			e.count++
		}
	}
}

// over reports whether more than max keys are indexed.
func (e *expiries) over(max int) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.count > max
}

// due takes out of the index, and returns, the keys that expire at or
// before now and, while more than max (if positive) remain, those that
// expire soonest.
func (e *expiries) due(now int64, max int) []dueKey {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []dueKey
	for {
		at, ok := e.order.Min()
		if !ok {
			break
		}
		over := max > 0 && e.count > max
		if at > now && !over {
			break
		}
		b := e.buckets[at]
		for k := range b {
			if at > now && e.count <= max {
				break
			}
			out = append(out, dueKey{k, at})
			delete(b, k)
			e.count--
		}
		if len(b) == 0 {
			delete(e.buckets, at)
			e.order.Delete(at)
		}
	}
	return out
}
