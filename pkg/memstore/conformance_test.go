package memstore

import (
	"context"
	"fmt"
	"testing"

	"gocloud.dev/docstore/driver"
	"gocloud.dev/docstore/drivertest"

	"github.com/droverhq/drover/pkg/durable"
)

type harness struct{}

func (harness) MakeCollection(_ context.Context, kind drivertest.CollectionKind) (driver.Collection, error) {
	switch kind {
	case drivertest.SingleKey, drivertest.NoRev:
		return newCollection(drivertest.KeyField, nil, nil)
	case drivertest.TwoKey:
		return newCollection("", drivertest.HighScoreKey, nil)
	case drivertest.AltRev:
		return newCollection(drivertest.KeyField, nil, &Options{RevisionField: drivertest.AlternateRevisionField})
	}
	panic("bad kind")
}

func (harness) BeforeDoTypes() []any               { return nil }
func (harness) BeforeQueryTypes() []any            { return nil }
func (harness) RevisionsEqual(rev1, rev2 any) bool { return rev1 == rev2 }
func (harness) Close()                             {}
func (harness) AtomicWritesKind() drivertest.AtomicWritesSupportKind {
	return drivertest.MultiplePartitions
}

// TestConformance runs gocloud's docstore driver suite on memstore.
func TestConformance(t *testing.T) {
	drivertest.RunConformanceTests(t, func(context.Context, *testing.T) (drivertest.Harness, error) {
		return harness{}, nil
	}, nil, nil)
}

// durableHarness makes the same collections durable, each under its own
// name in one engine.
type durableHarness struct {
	dir string
	n   *int
}

func (h durableHarness) MakeCollection(ctx context.Context, kind drivertest.CollectionKind) (driver.Collection, error) {
	eng, err := durable.Open(h.dir, nil)
	if err != nil {
		return nil, err
	}
	*h.n++
	opts := &Options{Engine: eng, Name: fmt.Sprintf("c%d", *h.n)}
	switch kind {
	case drivertest.SingleKey, drivertest.NoRev:
		return newCollection(drivertest.KeyField, nil, opts)
	case drivertest.TwoKey:
		return newCollection("", drivertest.HighScoreKey, opts)
	case drivertest.AltRev:
		opts.RevisionField = drivertest.AlternateRevisionField
		return newCollection(drivertest.KeyField, nil, opts)
	}
	panic("bad kind")
}

func (durableHarness) BeforeDoTypes() []any               { return nil }
func (durableHarness) BeforeQueryTypes() []any            { return nil }
func (durableHarness) RevisionsEqual(rev1, rev2 any) bool { return rev1 == rev2 }
func (durableHarness) Close()                             {}
func (durableHarness) AtomicWritesKind() drivertest.AtomicWritesSupportKind {
	return drivertest.MultiplePartitions
}

// TestConformanceDurable runs the suite on durable collections.
func TestConformanceDurable(t *testing.T) {
	dir := t.TempDir()
	n := 0
	drivertest.RunConformanceTests(t, func(context.Context, *testing.T) (drivertest.Harness, error) {
		return durableHarness{dir: dir, n: &n}, nil
	}, nil, nil)
}
