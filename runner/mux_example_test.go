package runner_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/droverhq/drover/pkg/task"
	"github.com/droverhq/drover/runner"
)

// Register functions by name, as on an http.ServeMux; the runner looks
// them up by the name a task carries.
func ExampleMux() {
	mux := runner.NewMux()
	mux.HandleFunc("upper", func(ctx context.Context, t *task.Task) (task.Result, error) {
		var s string
		if err := json.Unmarshal(t.Args, &s); err != nil {
			return nil, fmt.Errorf("upper wants a string: %v: %w", err, task.ErrPermanent)
		}
		return task.JSONResult(strings.ToUpper(s))
	})
	fmt.Println(mux.Functions())

	h, _ := mux.Handler("upper")
	res, err := h.Handle(context.Background(), &task.Task{ID: "t1", Function: "upper", Args: []byte(`"hi"`), Attempt: 1})
	fmt.Println(string(res), err)
	_, err = h.Handle(context.Background(), &task.Task{ID: "t2", Function: "upper", Args: []byte(`42`), Attempt: 1})
	fmt.Println("permanent:", errors.Is(err, task.ErrPermanent))
	// Output:
	// [upper]
	// "HI" <nil>
	// permanent: true
}

// A HandlerFunc is a Handler: wrap one to add behaviour around every
// attempt, as HTTP middleware does.
func ExampleHandlerFunc() {
	var calls int
	counted := func(h runner.Handler) runner.Handler {
		return runner.HandlerFunc(func(ctx context.Context, t *task.Task) (task.Result, error) {
			calls++
			return h.Handle(ctx, t)
		})
	}
	mux := runner.NewMux()
	mux.Handle("echo", counted(runner.HandlerFunc(func(ctx context.Context, t *task.Task) (task.Result, error) {
		return task.Result(t.Args), nil
	})))
	h, _ := mux.Handler("echo")
	res, _ := h.Handle(context.Background(), &task.Task{ID: "t1", Function: "echo", Args: []byte(`{"x":1}`), Attempt: 1})
	fmt.Println(string(res), calls)
	// Output: {"x":1} 1
}
