// Command relrunner is Drover's runner with the reliability suite's
// functions registered (see package reliability): each records its
// execution as a blob in DROVER_BUCKET, so the suite counts executions
// across processes. REL_CRASH_AFTER_OUTCOME=1 wraps DROVER_EVENTS_TOPIC so
// that the process kills itself (SIGKILL) right after publishing the
// outcome of attempt 1 of a rel-crashonce task, before acking it.
package main

import (
	"context"
	"fmt"
	"os"

	"gocloud.dev/blob"

	"github.com/droverhq/drover/internal/reliability"
	"github.com/droverhq/drover/runner"
	"github.com/droverhq/drover/runner/serve"
)

func main() {
	bucket, err := blob.OpenBucket(context.Background(), os.Getenv("DROVER_BUCKET"))
	if err != nil {
		fmt.Fprintf(os.Stderr, "relrunner: DROVER_BUCKET: %v\n", err)
		os.Exit(2)
	}
	if os.Getenv("REL_CRASH_AFTER_OUTCOME") != "" {
		os.Setenv("DROVER_EVENTS_TOPIC", reliability.CrashURL(os.Getenv("DROVER_EVENTS_TOPIC")))
	}
	name := os.Getenv("DROVER_RUNNER_NAME")
	serve.Runner(func(m *runner.Mux) {
		reliability.Register(m, reliability.BlobRecorder{Bucket: bucket}, name)
	})
}
