// Command chain runs the seeds' chain, chain(mul.s(2, 3), safediv.s(3)),
// as a Drover chain: mul [2, 3], then safediv with mul's result prepended
// to its own args ([6, 3] → 2). Then the same with a divisor of 0: safediv
// fails for good (division by zero) and the step after it is cancelled.
// It talks to the dispatcher at DROVER_URL (http://127.0.0.1:8080, as
// `make run` serves); mul and safediv are built-in functions. See
// README.md.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/droverhq/drover/client"
	"github.com/droverhq/drover/pkg/task"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "chain:", err)
		os.Exit(1)
	}
}

func run() error {
	url := os.Getenv("DROVER_URL")
	if url == "" {
		url = "http://127.0.0.1:8080"
	}
	var opts []client.Option
	if key := os.Getenv("DROVER_API_KEY"); key != "" {
		opts = append(opts, client.WithAPIKey(key))
	}
	c := client.New(url, opts...)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	chain := func(divisor int) task.Spec {
		return task.Spec{
			Function: "mul", Args: json.RawMessage(`[2, 3]`),
			Then: &task.Spec{
				Function: "safediv", Args: json.RawMessage(fmt.Sprintf(`[%d]`, divisor)),
				Then: &task.Spec{Function: "echo", Args: json.RawMessage(`{"note": "the quotient"}`)},
			},
		}
	}
	for _, divisor := range []int{3, 0} {
		fmt.Printf("chain: mul [2, 3] → safediv [%d] → echo\n", divisor)
		st, err := c.Submit(ctx, chain(divisor))
		if err != nil {
			return err
		}
		for id := st.ID; id != ""; {
			st, err := c.Wait(ctx, id, client.WaitOptions{})
			if err != nil {
				return fmt.Errorf("wait for %s: %w", id, err)
			}
			out := string(st.Result)
			if st.Error != "" {
				out = "error: " + st.Error
			}
			fmt.Printf("  %-8s %s  %-9s  %s\n", st.Function, st.ID, st.State, out)
			id = st.Next
		}
	}
	return nil
}
