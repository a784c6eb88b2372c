package task_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	_ "gocloud.dev/docstore/memdocstore"

	"github.com/droverhq/drover/pkg/task"
)

// A function marks a failure not worth retrying by wrapping
// task.ErrPermanent; the runner fails the task at once instead of retrying.
func ExampleErrPermanent() {
	parse := func(name string) error {
		if name == "" {
			return fmt.Errorf("parse %q: empty name: %w", name, task.ErrPermanent)
		}
		return nil
	}
	err := parse("")
	fmt.Println(err)
	fmt.Println("retry:", !errors.Is(err, task.ErrPermanent))
	// Output:
	// parse "": empty name: permanent failure
	// retry: false
}

// Open a status store from a gocloud docstore URL (here gocloud's memory
// docstore; dynamodb:// or memstore:// the same way), apply a runner's
// events in any order, and read the status back.
func ExampleOpenStore() {
	ctx := context.Background()
	store, err := task.OpenStore(ctx, "mem://statuses/id")
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	m := &task.Message{ID: task.NewID(at), Function: "echo", Queue: "default", MaxAttempts: 3, CreatedAt: at}
	started := task.NewEvent(m, 1, "runner-1", at.Add(time.Second))
	started.Phase, started.StartedAt = task.PhaseStarted, started.At
	done := started
	done.Phase, done.At, done.Result = task.PhaseSucceeded, at.Add(2*time.Second), []byte(`"hi"`)

	// The outcome arrives before the started event: the status is the same.
	if _, err := store.Apply(ctx, []*task.Event{&done, &started}); err != nil {
		log.Fatal(err)
	}
	st, err := store.Get(ctx, m.ID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(st.State, st.Attempt, st.Runner, string(st.Result))
	// Output: succeeded 1 runner-1 "hi"
}
