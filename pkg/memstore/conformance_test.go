package memstore

import (
	"context"
	"testing"

	"gocloud.dev/docstore/driver"
	"gocloud.dev/docstore/drivertest"
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
