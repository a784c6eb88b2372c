package memstore

import (
	"context"
	"reflect"
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
	created := 0
	for i, doc := range docs {
		k := kind(i)
		if err := c.direct(ctx, k, doc, fps); err != nil {
			fail(i, err)
		} else if k == driver.Create {
			created++
		}
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

// errClosed is what the direct path returns once the collection is
// closed, as the portable type does.
var errClosed = taskdriver.Errorf(gcerrors.FailedPrecondition, "docstore: Collection has been closed")

// direct runs one action with the checks the portable type makes before
// it hands an action to the driver.
func (c *collection) direct(ctx context.Context, kind driver.ActionKind, doc any, fps [][]string) error {
	ddoc, err := driver.NewDocument(doc)
	if err != nil {
		return taskdriver.Errorf(gcerrors.InvalidArgument, "%v", err)
	}
	key, err := c.Key(ddoc)
	if err != nil {
		return err
	}
	if key == nil || driver.IsEmptyValue(reflect.ValueOf(key)) {
		if kind != driver.Create {
			return taskdriver.Errorf(gcerrors.InvalidArgument, "missing document key")
		}
		key = nil
	}
	if kind == driver.Create {
		if rev, _ := ddoc.GetField(c.opts.RevisionField); rev != nil {
			return taskdriver.Errorf(gcerrors.InvalidArgument, "cannot create a document with a revision field")
		}
	}
	return c.runAction(ctx, &driver.Action{Kind: kind, Doc: ddoc, Key: key, FieldPaths: fps})
}

var _ taskdriver.DirectCollection = (*collection)(nil)
