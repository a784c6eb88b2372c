package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/droverhq/drover/internal/bench"
)

func benchCommands() map[string]*command {
	return map[string]*command{
		"bench": {
			summary: "measure the whole pipeline with no-op tasks: throughput, latency, CPU, memory",
			run:     runBench,
		},
	}
}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("drover bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o bench.Options
	fs.StringVar(&o.Backend, "backend", bench.Embedded, "embedded (in-process) or env (DROVER_* and AWS_* from the environment; make bench-moto runs it on a moto_server with a fresh stack)")
	fs.StringVar(&o.Durability, "durability", "memory", "the embedded backend's queues and status store: memory, or durable (journaled in one storage engine on disk, as drover dev runs by default)")
	fs.StringVar(&o.DataDir, "data-dir", "", "the durable embedded backend's data directory (default: a new temporary one, removed at the end)")
	fs.IntVar(&o.Tasks, "tasks", 100000, "tasks in the burn-down and steady phases")
	rates := fs.String("rates", "100,1000,15000", "offered rates of the open-loop phases, tasks/s, comma-separated (empty: none)")
	fs.DurationVar(&o.Duration, "duration", 5*time.Second, "how long each open-loop rate is offered")
	fs.IntVar(&o.Runners, "runners", 2, "runners")
	fs.IntVar(&o.Concurrency, "concurrency", 8, "tasks each runner runs at once")
	fs.IntVar(&o.Clients, "clients", 4, "HTTP submit requests in flight at most")
	fs.IntVar(&o.Batch, "batch", 1000, "most tasks per submit request")
	fs.DurationVar(&o.Linger, "linger", 300*time.Microsecond, "how long an open-loop client lets due tasks wait for more before it sends a request that is not full (counted in the latencies; 0: send what is due at once)")
	fs.DurationVar(&o.Drain, "drain", time.Minute, "how long a phase waits for its last tasks")
	fs.BoolVar(&o.SkipBurn, "no-burn", false, "skip the burn-down phase")
	fs.BoolVar(&o.SkipSteady, "no-steady", false, "skip the steady (closed-loop) phase")
	fs.BoolVar(&o.SDKCeiling, "sdk", false, "also measure the raw AWS SDK's ceilings, one SQS hop and a Drover task's same path")
	fs.BoolVar(&o.CountRequests, "count-requests", false, "count the requests sent to the AWS endpoint by operation, per task (env with AWS_ENDPOINT_URL)")
	fs.StringVar(&o.CPUProfile, "cpuprofile", "", "write a CPU profile of the run to this file")
	fs.StringVar(&o.Trace, "trace", "", "write a runtime execution trace of the run to this file (go tool trace)")
	fs.StringVar(&o.MemProfile, "memprofile", "", "write a heap profile, taken after the last phase, to this file")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	verbose := fs.Bool("v", false, "log the system's warnings to stderr")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "drover bench: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	for _, f := range strings.Split(*rates, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		r, err := strconv.Atoi(f)
		if err != nil || r <= 0 {
			fmt.Fprintf(stderr, "drover bench: --rates: %q is not a positive number of tasks/s\n", f)
			return 2
		}
		o.Rates = append(o.Rates, r)
	}
	if *verbose {
		o.Log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	rep, err := bench.Run(ctx, o)
	if err != nil {
		fmt.Fprintf(stderr, "drover bench: %v\n", err)
		if rep == nil {
			return 1
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rep)
	} else {
		rep.Print(stdout)
	}
	if err != nil {
		return 1
	}
	return 0
}
