package memstore

import (
	"context"
	"io"
	"slices"

	"gocloud.dev/docstore/driver"
)

// indexChunk is how many keys a query takes from the index at a time.
const indexChunk = 256

type hit struct {
	key any
	doc *stored
}

// RunGetQuery implements driver.Collection. A query ordered by the key
// field walks the ordered index from the bound its key filters give and
// stops at its limit; any other query filters every document, then sorts.
func (c *collection) RunGetQuery(ctx context.Context, q *driver.Query) (driver.DocumentIterator, error) {
	if q.BeforeQuery != nil {
		if err := q.BeforeQuery(func(any) bool { return false }); err != nil {
			return nil, err
		}
	}
	var hits []hit
	if q.OrderByField != "" && q.OrderByField == c.keyField && c.other.Load() == 0 {
		hits = c.walkIndex(ctx, q)
	} else {
		hits = c.scan(q)
	}
	if q.Offset > 0 {
		hits = hits[min(q.Offset, len(hits)):]
	}
	if q.Limit > 0 && len(hits) > q.Limit {
		hits = hits[:q.Limit]
	}
	fps := q.FieldPaths
	if len(fps) > 0 && c.keyField != "" {
		fps = append([][]string{{c.keyField}}, fps...)
	}
	return &docIterator{c: c, hits: hits, fieldPaths: fps}, nil
}

// keyBounds returns the bounds the filters put on the key field.
func (c *collection) keyBounds(fs []driver.Filter) (lo, hi string, hasLo, hasHi bool) {
	for _, f := range fs {
		if len(f.FieldPath) != 1 || f.FieldPath[0] != c.keyField {
			continue
		}
		s, ok := f.Value.(string)
		if !ok {
			continue
		}
		switch f.Op {
		case "<", "<=":
			if !hasHi || s < hi {
				hi, hasHi = s, true
			}
		case ">", ">=":
			if !hasLo || s > lo {
				lo, hasLo = s, true
			}
		case driver.EqualOp:
			lo, hi, hasLo, hasHi = s, s, true, true
		}
	}
	return
}

// walkIndex serves a query ordered by the key field from the index.
func (c *collection) walkIndex(ctx context.Context, q *driver.Query) []hit {
	want := 0
	if q.Limit > 0 {
		want = q.Offset + q.Limit
	}
	lo, hi, hasLo, hasHi := c.keyBounds(q.Filters)
	var (
		hits    []hit
		keys    = make([]string, 0, indexChunk)
		started bool
		last    string
	)
	for ctx.Err() == nil {
		keys = keys[:0]
		done := true
		take := func(k string) bool {
			if started && k == last {
				return true
			}
			if (q.OrderAscending && hasHi && k > hi) || (!q.OrderAscending && hasLo && k < lo) {
				return false
			}
			keys = append(keys, k)
			if len(keys) == indexChunk {
				done = false
				return false
			}
			return true
		}
		c.indexMu.RLock()
		switch {
		case q.OrderAscending && started:
			c.index.AscendGreaterOrEqual(last, take)
		case q.OrderAscending && hasLo:
			c.index.AscendGreaterOrEqual(lo, take)
		case q.OrderAscending:
			c.index.Ascend(take)
		case started:
			c.index.DescendLessOrEqual(last, take)
		case hasHi:
			c.index.DescendLessOrEqual(hi, take)
		default:
			c.index.Descend(take)
		}
		c.indexMu.RUnlock()
		for _, k := range keys {
			sh := c.shardOf(k)
			sh.mu.RLock()
			d := sh.docs[k]
			sh.mu.RUnlock()
			if d != nil && filtersMatch(q.Filters, d) {
				hits = append(hits, hit{k, d})
				if want > 0 && len(hits) == want {
					return hits
				}
			}
		}
		if done || len(keys) == 0 {
			break
		}
		started, last = true, keys[len(keys)-1]
	}
	return hits
}

// scan filters every document, then sorts by q.OrderByField.
func (c *collection) scan(q *driver.Query) []hit {
	var hits []hit
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.RLock()
		for k, d := range sh.docs {
			if filtersMatch(q.Filters, d) {
				hits = append(hits, hit{k, d})
			}
		}
		sh.mu.RUnlock()
	}
	if f := q.OrderByField; f != "" {
		slices.SortStableFunc(hits, func(a, b hit) int {
			x, _ := a.doc.field([]string{f})
			y, _ := b.doc.field([]string{f})
			r, ok := compare(x, y, ">")
			if !ok {
				return 0
			}
			if !q.OrderAscending {
				r = -r
			}
			return r
		})
	}
	return hits
}

func filtersMatch(fs []driver.Filter, d *stored) bool {
	for _, f := range fs {
		v, ok := d.field(f.FieldPath)
		if !ok || v == nil {
			return false
		}
		r, ok := compare(v, f.Value, f.Op)
		if !ok || !applyComparison(f.Op, r) {
			return false
		}
	}
	return true
}

type docIterator struct {
	c          *collection
	hits       []hit
	fieldPaths [][]string
	err        error
}

func (it *docIterator) Next(_ context.Context, doc driver.Document) error {
	if it.err != nil {
		return it.err
	}
	if len(it.hits) == 0 {
		it.err = io.EOF
		return it.err
	}
	if err := it.c.decode(it.hits[0].doc, doc, it.fieldPaths); err != nil {
		it.err = err
		return err
	}
	it.hits = it.hits[1:]
	return nil
}

func (it *docIterator) Stop() { it.err = io.EOF }

func (it *docIterator) As(any) bool { return false }

// QueryPlan implements driver.Collection.
func (c *collection) QueryPlan(q *driver.Query) (string, error) {
	if q.OrderByField != "" && q.OrderByField == c.keyField && c.other.Load() == 0 {
		return "ordered index on " + c.keyField, nil
	}
	return "scan", nil
}
