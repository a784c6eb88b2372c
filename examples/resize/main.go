// Command resize is an example runner binary with a function of its own.
// Build it, point it at the same queues as your dispatcher, and submit
// {"function": "thumbnail", "args": {"width": 640, "height": 480}}.
package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/droverhq/drover/pkg/task"
	"github.com/droverhq/drover/runner"
	"github.com/droverhq/drover/runner/serve"
)

type size struct {
	Width  int `json:"width"`
	Height int `json:"height"`
}

// thumbnail computes a thumbnail's size: a stand-in for real work. Bad
// arguments are permanent failures, not worth retrying.
func thumbnail(ctx context.Context, t *task.Task) (task.Result, error) {
	var s size
	if err := json.Unmarshal(t.Args, &s); err != nil || s.Width <= 0 || s.Height <= 0 {
		return nil, fmt.Errorf("thumbnail %s: want {\"width\": >0, \"height\": >0}: %w", t.ID, task.ErrPermanent)
	}
	scale := 160.0 / float64(max(s.Width, s.Height))
	return task.JSONResult(size{int(float64(s.Width) * scale), int(float64(s.Height) * scale)})
}

func main() {
	serve.Runner(func(mux *runner.Mux) {
		mux.HandleFunc("thumbnail", thumbnail)
	})
}
