package memstore

import (
	"context"
	"reflect"
	"slices"
	"strings"

	"gocloud.dev/docstore/driver"
	"gocloud.dev/gcerrors"

	taskdriver "github.com/droverhq/drover/pkg/task/driver"
)

// GetDirect implements taskdriver.DirectCollection: each document is read as
// ActionList.Get(doc, fields...) would read it, on the caller's goroutine.
func (c *collection) GetDirect(ctx context.Context, docs []any, fields ...string) ([]error, error) {
	var fps [][]string
	for _, f := range fields {
		fps = append(fps, strings.Split(f, "."))
	}
	return c.directAll(ctx, docs, func(int) driver.ActionKind { return driver.Get }, fps)
}

// WriteDirect implements taskdriver.DirectCollection: document i is created if
// create[i] and replaced otherwise, as an action list of the same writes
// would.
func (c *collection) WriteDirect(ctx context.Context, docs []any, create []bool) ([]error, error) {
	return c.directAll(ctx, docs, func(i int) driver.ActionKind {
		if create[i] {
			return driver.Create
		}
		return driver.Replace
	}, nil)
}

// directAll runs action kind(i) on each docs[i], returning nil errors when
// all succeeded and one error (or nil) per document otherwise.
func (c *collection) directAll(ctx context.Context, docs []any, kind func(int) driver.ActionKind, fps [][]string) ([]error, error) {
	if c.closed.Load() {
		return nil, errClosed
	}
	var errs []error
	fail := func(i int, err error) {
		if errs == nil {
			errs = make([]error, len(docs))
		}
		errs[i] = err
	}
	var (
		actions []*driver.Action // of a durable collection's writes
		created = 0
	)
	for i, doc := range docs {
		k := kind(i)
		a, err := c.direct(k, doc, fps)
		if err == nil && c.opts.Engine != nil && k != driver.Get {
			a.Index = i
			actions = append(actions, a)
			continue
		}
		if err == nil {
			err = c.runAction(ctx, a)
		}
		if err != nil {
			fail(i, err)
		} else if k == driver.Create {
			created++
		}
	}
	for lo := 0; lo < len(actions); lo += journalBatch {
		part := actions[lo:min(lo+journalBatch, len(actions))]
		c.writeJournaled(ctx, part, func(a *driver.Action, err error) {
			if err != nil {
				fail(a.Index, err)
			} else if a.Kind == driver.Create {
				created++
			}
		})
	}
	// One sync for every document created: the engine's log syncs them
	// (and everything journaled before them) at once.
	if created > 0 {
		if err := c.syncCreate(); err != nil {
			for i := range docs {
				if kind(i) == driver.Create && (errs == nil || errs[i] == nil) {
					fail(i, err)
				}
			}
		}
	}
	return errs, nil
}

// journalBatch is the most writes of a direct call journaled in one batch
// (under the locks of all their shards, which readers wait for).
const journalBatch = 256

// writeJournaled runs the writes of a durable collection as runAction
// would, calling done with each action's outcome, but journals them in
// one batch applied under the locks of all their shards: one engine
// commit instead of one per document, in the order of the documents'
// changes in memory (no other write to those documents can come between).
// The caller syncs the creations.
func (c *collection) writeJournaled(ctx context.Context, actions []*driver.Action, done func(*driver.Action, error)) {
	nexts := make([]*stored, len(actions))
	var idx []int
	ok := actions[:0:0]
	for _, a := range actions {
		if err := ctx.Err(); err != nil {
			done(a, err)
			continue
		}
		if a.Key == nil { // a Create without a key (direct checked the kind)
			a.Key = driver.UniqueString()
			if err := a.Doc.SetField(c.keyField, a.Key); err != nil {
				done(a, taskdriver.Errorf(gcerrors.InvalidArgument, "cannot set key field %q", c.keyField))
				continue
			}
		}
		if a.Kind == driver.Create || a.Kind == driver.Replace || a.Kind == driver.Put {
			next, err := c.encode(a.Doc)
			if err != nil {
				done(a, err)
				continue
			}
			nexts[len(ok)] = next
		}
		ok = append(ok, a)
		if j := int(c.shardIndex(a.Key)); !slices.Contains(idx, j) {
			idx = append(idx, j)
		}
	}
	if len(ok) == 0 {
		return
	}
	slices.Sort(idx)
	for _, j := range idx {
		c.shards[j].mu.Lock()
	}
	jb := c.opts.Engine.NewBatch()
	errs := make([]error, len(ok))
	capped := false
	for i, a := range ok {
		sh := c.shardOf(a.Key)
		cur := sh.docs[a.Key]
		if cur != nil {
			a.Key = cur.key
		}
		err := c.check(a, cur)
		if err == nil {
			err = c.execute(sh, a, cur, nexts[i], jb)
		}
		errs[i] = err
		if nexts[i] != nil && nexts[i].capped {
			capped = true
		}
	}
	// A failed apply fails the engine for good: every later write and
	// sync fails too, and the process must restart from what is on disk.
	if err := c.opts.Engine.Apply(jb, false); err != nil {
		err = taskdriver.Errorf(gcerrors.Internal, "write documents: %v", err)
		for i := range errs {
			if errs[i] == nil {
				errs[i] = err
			}
		}
	}
	for _, j := range idx {
		c.shards[j].mu.Unlock()
	}
	if capped {
		c.trimCap()
	}
	for i, a := range ok {
		done(a, errs[i])
	}
}

// errClosed is what the direct path returns once the collection is
// closed, as the portable type does.
var errClosed = taskdriver.Errorf(gcerrors.FailedPrecondition, "docstore: Collection has been closed")

// direct makes the action of kind on doc, with the checks the portable
// type makes before it hands an action to the driver.
func (c *collection) direct(kind driver.ActionKind, doc any, fps [][]string) (*driver.Action, error) {
	ddoc, err := driver.NewDocument(doc)
	if err != nil {
		return nil, taskdriver.Errorf(gcerrors.InvalidArgument, "%v", err)
	}
	key, err := c.Key(ddoc)
	if err != nil {
		return nil, err
	}
	if key == nil || driver.IsEmptyValue(reflect.ValueOf(key)) {
		if kind != driver.Create {
			return nil, taskdriver.Errorf(gcerrors.InvalidArgument, "missing document key")
		}
		key = nil
	}
	if kind == driver.Create {
		if rev, _ := ddoc.GetField(c.opts.RevisionField); rev != nil {
			return nil, taskdriver.Errorf(gcerrors.InvalidArgument, "cannot create a document with a revision field")
		}
	}
	return &driver.Action{Kind: kind, Doc: ddoc, Key: key, FieldPaths: fps}, nil
}

var _ taskdriver.DirectCollection = (*collection)(nil)
