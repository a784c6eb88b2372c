// Package runner is Drover's runner: it takes task messages, runs the
// function each names, and publishes what happened, acking a message only
// after the event recording its outcome is published (and its result
// archived). Users build their own runner binary with their functions
// registered on a [Mux], like an http.ServeMux, and serve it with package
// [github.com/droverhq/drover/runner/serve].
//
// # Functions
//
// A [Handler] (or a [HandlerFunc]) runs one attempt of a task. It must
// return when its context is done: the context carries the task's timeout
// and is cancelled when the task is cancelled or the runner shuts down.
// An error wrapping task.ErrPermanent fails the task at once; any other
// error is retried, with backoff, while attempts remain. A panic fails the
// task. Registering a name twice panics at start-up (a wiring bug).
// [RegisterBuiltins] adds echo, sleep, sha256, fail, sort, merge and exec.
//
// # Loops
//
// [Runner.Run] is the long-lived loop (VM mode): Concurrency workers
// receive from a subscription kept open by a task.Reopener, one heartbeat
// loop extends the running tasks' leases, checks them for cancellation
// and announces the runner, and shutdown goes in stages (stop taking
// messages, let running tasks finish for Grace, release the rest).
// [Runner.LambdaHandler] is the Lambda SQS batch loop over the same
// [Runner.Process] and the same heartbeat loop. Both end in Process,
// which runs one delivery to its outcome (runner.go).
package runner
