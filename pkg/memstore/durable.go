package memstore

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"reflect"
	"slices"
	"sync"
	"time"

	"gocloud.dev/docstore"
	"gocloud.dev/docstore/driver"
	"gocloud.dev/gcerrors"

	"github.com/droverhq/drover/pkg/durable"
	taskdriver "github.com/droverhq/drover/pkg/task/driver"
)

// A durable collection (Options.Engine) journals every write, delete and
// expiry in the engine under "d/<name>\x00<key>", each document in its
// generic form (the map memdocstore keeps) in the binary encoding below,
// and is loaded from it at open. A Create waits for a sync before it
// returns (a task's queued status is on disk before dispatch answers);
// every other change is applied in order without waiting, and is on disk
// with the next sync of the shared log.
//
// The encoding: a value is a tag byte and its data; lists and maps carry
// a count (uvarint), strings and bytes a length, times their
// MarshalBinary form. It is written here, not gob or JSON, because it
// must keep the generic form's types exactly (int64 vs float64, []byte,
// time.Time) for one document at a time: gob repeats its type
// descriptions in every document, and JSON loses the types.

const (
	tagNil byte = iota
	tagFalse
	tagTrue
	tagInt
	tagFloat
	tagString
	tagBytes
	tagTime
	tagList
	tagMap
)

func appendValue(b []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(b, tagNil), nil
	case bool:
		if v {
			return append(b, tagTrue), nil
		}
		return append(b, tagFalse), nil
	case int64:
		return binary.AppendVarint(append(b, tagInt), v), nil
	case float64:
		return binary.BigEndian.AppendUint64(append(b, tagFloat), math.Float64bits(v)), nil
	case string:
		b = binary.AppendUvarint(append(b, tagString), uint64(len(v)))
		return append(b, v...), nil
	case []byte:
		b = binary.AppendUvarint(append(b, tagBytes), uint64(len(v)))
		return append(b, v...), nil
	case time.Time:
		tb, err := v.MarshalBinary()
		if err != nil {
			return nil, err
		}
		b = binary.AppendUvarint(append(b, tagTime), uint64(len(tb)))
		return append(b, tb...), nil
	case []any:
		b = binary.AppendUvarint(append(b, tagList), uint64(len(v)))
		var err error
		for _, x := range v {
			if b, err = appendValue(b, x); err != nil {
				return nil, err
			}
		}
		return b, nil
	case map[string]any:
		b = binary.AppendUvarint(append(b, tagMap), uint64(len(v)))
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys) // one document, one encoding
		var err error
		for _, k := range keys {
			b = binary.AppendUvarint(b, uint64(len(k)))
			b = append(b, k...)
			if b, err = appendValue(b, v[k]); err != nil {
				return nil, err
			}
		}
		return b, nil
	}
	return nil, fmt.Errorf("cannot journal a value of type %T", v)
}

var errShort = fmt.Errorf("truncated value")

// readValue decodes a value from b, returning it and the rest of b.
func readValue(b []byte) (any, []byte, error) {
	if len(b) == 0 {
		return nil, nil, errShort
	}
	tag, b := b[0], b[1:]
	count := func() (int, error) {
		n, w := binary.Uvarint(b)
		if w <= 0 || n > uint64(len(b)) {
			return 0, errShort
		}
		b = b[w:]
		return int(n), nil
	}
	switch tag {
	case tagNil:
		return nil, b, nil
	case tagFalse:
		return false, b, nil
	case tagTrue:
		return true, b, nil
	case tagInt:
		n, w := binary.Varint(b)
		if w <= 0 {
			return nil, nil, errShort
		}
		return n, b[w:], nil
	case tagFloat:
		if len(b) < 8 {
			return nil, nil, errShort
		}
		return math.Float64frombits(binary.BigEndian.Uint64(b)), b[8:], nil
	case tagString, tagBytes, tagTime:
		n, err := count()
		if err != nil {
			return nil, nil, err
		}
		if len(b) < n {
			return nil, nil, errShort
		}
		data, rest := b[:n], b[n:]
		switch tag {
		case tagString:
			return string(data), rest, nil
		case tagBytes:
			return slices.Clone(data), rest, nil
		}
		var t time.Time
		if err := t.UnmarshalBinary(data); err != nil {
			return nil, nil, err
		}
		return t, rest, nil
	case tagList:
		n, err := count()
		if err != nil {
			return nil, nil, err
		}
		out := make([]any, n)
		for i := range out {
			if out[i], b, err = readValue(b); err != nil {
				return nil, nil, err
			}
		}
		return out, b, nil
	case tagMap:
		n, err := count()
		if err != nil {
			return nil, nil, err
		}
		out := make(map[string]any, n)
		for range n {
			kl, err := count()
			if err != nil || len(b) < kl {
				return nil, nil, errShort
			}
			k := string(b[:kl])
			b = b[kl:]
			if out[k], b, err = readValue(b); err != nil {
				return nil, nil, err
			}
		}
		return out, b, nil
	}
	return nil, nil, fmt.Errorf("unknown tag %d", tag)
}

// docKey is the engine key of the document at key.
func (c *collection) docKey(key any) ([]byte, error) {
	return appendValue(slices.Clone(c.pfx), key)
}

// persist journals s as the document at key, in jb if not nil (applied
// by the caller before it unlocks), else in a batch of its own applied
// without waiting. Call with the shard locked.
func (c *collection) persist(jb *durable.Batch, key any, s *stored) error {
	if c.opts.Engine == nil {
		return nil
	}
	sc := scratch.Get().(*[]byte)
	defer scratch.Put(sc)
	k, err := appendValue(append((*sc)[:0], c.pfx...), key)
	if err != nil {
		return taskdriver.Errorf(gcerrors.InvalidArgument, "key %v: %v", key, err)
	}
	var v []byte
	if s.m == nil {
		v = s.ti.appendPacked(k[len(k):], s.packed, c.opts.RevisionField, s.rev, s.rev != 0)
	} else if v, err = appendValue(k[len(k):], s.m); err != nil {
		return taskdriver.Errorf(gcerrors.InvalidArgument, "document %v: %v", key, err)
	}
	if cap(v) > cap(*sc) {
		*sc = v[:0]
	} else {
		*sc = k[:0]
	}
	return c.journal(jb, key, func(b *durable.Batch) { b.Set(k, v) })
}

// scratch holds the buffers documents are encoded in for the journal
// (a batch copies what it is given).
var scratch = sync.Pool{New: func() any { return new([]byte) }}

// journal records a change made by set in jb, or applies it at once in a
// batch of its own if jb is nil.
func (c *collection) journal(jb *durable.Batch, key any, set func(*durable.Batch)) error {
	if jb != nil {
		set(jb)
		return nil
	}
	b := c.opts.Engine.NewBatch()
	set(b)
	if err := c.opts.Engine.Apply(b, false); err != nil {
		return taskdriver.Errorf(gcerrors.Internal, "write document %v: %v", key, err)
	}
	return nil
}

// persistDelete journals the removal of the document at key, as persist
// does. Call with the shard locked.
func (c *collection) persistDelete(jb *durable.Batch, key any) error {
	if c.opts.Engine == nil {
		return nil
	}
	k, err := c.docKey(key)
	if err != nil {
		return taskdriver.Errorf(gcerrors.InvalidArgument, "key %v: %v", key, err)
	}
	return c.journal(jb, key, func(b *durable.Batch) { b.Delete(k) })
}

// syncCreate waits for a creation journaled by persist to be on disk.
func (c *collection) syncCreate() error {
	if c.opts.Engine == nil {
		return nil
	}
	if err := c.opts.Engine.Sync(); err != nil {
		return taskdriver.Errorf(gcerrors.Internal, "sync: %v", err)
	}
	return nil
}

// loadEngine loads the collection's documents from its engine: those of
// a registered document type (taskdriver.DocumentTypes) packed, as they
// were when written, the others generic.
func (c *collection) loadEngine() error {
	eng := c.opts.Engine
	var maxRev int64
	var types []*typeInfo
	var sc unpackScratch
	for _, t := range taskdriver.DocumentTypes() {
		if t.Kind() != reflect.Struct {
			continue
		}
		doc, err := driver.NewDocument(reflect.New(t).Interface())
		if err != nil {
			continue
		}
		if ti := typeOf(doc, c.opts.RevisionField); ti.flat {
			types = append(types, ti)
		}
	}
	err := eng.Scan(c.pfx, func(k, v []byte) error {
		key, rest, err := readValue(k[len(c.pfx):])
		if err == nil && len(rest) != 0 {
			err = fmt.Errorf("trailing bytes")
		}
		if err != nil {
			return fmt.Errorf("load collection %q from %s: key %q: %w", c.opts.Name, eng.Dir(), k, err)
		}
		s := c.loadTyped(types, v, &sc)
		if s == nil {
			dv, rest, err := readValue(v)
			m, ok := dv.(map[string]any)
			if err == nil && (!ok || len(rest) != 0) {
				err = fmt.Errorf("not one document")
			}
			if err != nil {
				return fmt.Errorf("load collection %q from %s: document %v: %w", c.opts.Name, eng.Dir(), key, err)
			}
			s = &stored{m: m}
			if r, ok := m[c.opts.RevisionField].(int64); ok {
				s.rev = r
			}
		}
		maxRev = max(maxRev, s.rev)
		c.setExpiry(s)
		c.store(c.shardOf(key), key, nil, s)
		c.loaded++
		return nil
	})
	c.revision.Store(maxRev)
	return err
}

// Crash drops a durable collection as a killed process would: without
// the sync and the journal flush of Close (for crash tests). Its engine
// reference is given back, so the next open reads the same data.
func Crash(coll *docstore.Collection) {
	var c *collection
	if !coll.As(&c) {
		return
	}
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		if c.stop != nil {
			close(c.stop)
			<-c.sweepDone
		}
		if c.opts.onClose != nil {
			c.opts.onClose()
		}
		if c.opts.Engine != nil {
			c.opts.Engine.Close()
		}
	})
}

// Sync implements taskdriver.Syncer for a durable collection: it waits
// until every write so far (this collection's and the queues' sharing its
// engine) is on disk.
func (c *collection) Sync(context.Context) error {
	if err := c.opts.Engine.Sync(); err != nil {
		return taskdriver.Errorf(gcerrors.Internal, "memstore: sync: %v", err)
	}
	return nil
}

// loadTyped returns the packed form of the journaled document v if it is
// one of types', else nil.
func (c *collection) loadTyped(types []*typeInfo, v []byte, sc *unpackScratch) *stored {
	for _, ti := range types {
		if packed, rev, ok := ti.unpackJournal(v, c.opts.RevisionField, sc); ok {
			return &stored{ti: ti, packed: packed, rev: rev}
		}
	}
	return nil
}
