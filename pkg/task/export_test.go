package task

import (
	"testing"

	"gocloud.dev/docstore"
)

// Hooks for this package's external tests (package task_test), which can
// import the drivers that import this package.

// ApplyShuffledConcurrent is testStoreApplyShuffledConcurrent.
func ApplyShuffledConcurrent(t *testing.T, s *Store) { testStoreApplyShuffledConcurrent(t, s) }

// NewPortableStore wraps c like NewStore, but always through action
// lists, even when the driver offers a DirectCollection.
func NewPortableStore(c *docstore.Collection) *Store { return &Store{coll: c} }

// Direct reports whether s uses its driver's DirectCollection.
func (s *Store) Direct() bool { return s.direct != nil }

// RunnerIDPrefix and the ids of the other kinds, for the test that
// runner ids sort above them all.
const RunnerIDPrefix = runnerIDPrefix

func GroupDocID(id string) string { return groupDocID(id) }
func KeyDocID(key string) string  { return keyDocID(key) }
