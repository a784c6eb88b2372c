package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"

	"github.com/droverhq/drover/functions/collect/collector"
	"github.com/droverhq/drover/functions/dispatch/api"
	_ "github.com/droverhq/drover/internal/drivers"
	"github.com/droverhq/drover/internal/envconfig"
	"github.com/droverhq/drover/internal/telemetry"
	"github.com/droverhq/drover/runner/serve"
)

func serverCommands() map[string]*command {
	return map[string]*command{
		"dev": {
			summary: "run dispatch, runners and collector in one process (the embedded default)",
			run:     serveVerb("dev"),
		},
		"dispatch": {
			summary: "run the dispatch HTTP API as a long-lived process (VM mode)",
			run:     serveVerb("dispatch"),
		},
		"runner": {
			summary: "run a runner with the built-in functions as a long-lived process (VM mode); --server URL: a remote runner over the dispatch API (key in DROVER_API_KEY)",
			run:     serveVerb("runner"),
		},
		"collect": {
			summary: "run the collector (and dead-letter sweeper) as a long-lived process (VM mode)",
			run:     serveVerb("collect"),
		},
	}
}

// serveVerb runs one part, configured from DROVER_* variables; flags
// override the most common ones.
func serveVerb(part string) func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
		fs := flag.NewFlagSet("drover "+part, flag.ContinueOnError)
		fs.SetOutput(stderr)
		addr := fs.String("addr", "", "HTTP listen address (DROVER_ADDR)")
		runners := fs.Int("runners", 0, "runners to start in dev mode (DROVER_RUNNERS)")
		conc := fs.Int("concurrency", 0, "tasks each runner runs at once (DROVER_CONCURRENCY)")
		var server *string
		if part == "runner" {
			server = fs.String("server", "", "run a remote runner over the dispatch API at this http(s) URL, with the key in DROVER_API_KEY (DROVER_SERVER)")
		}
		if err := fs.Parse(args); err != nil {
			return 2
		}
		if fs.NArg() > 0 {
			fmt.Fprintf(stderr, "drover %s: unexpected argument %q\n", part, fs.Arg(0))
			return 2
		}
		fail := func(code int, err error) int {
			fmt.Fprintf(stderr, "drover %s: %v\n", part, err)
			return code
		}
		// Each part reads only its own variables.
		var (
			e      devEnv
			logCfg envconfig.Log
			run    func(log *slog.Logger) error
			cfg    any
		)
		switch part {
		case "dev":
			cfg = &e
		case "dispatch":
			cfg = &e.Dispatch
		case "runner":
			cfg = &e.Runner
		case "collect":
			cfg = &e.Collect
		}
		if err := envconfig.Parse(cfg); err != nil {
			return fail(2, err)
		}
		if *addr != "" {
			e.Dispatch.Addr = *addr
		}
		if *runners > 0 {
			e.Runners = *runners
		}
		if *conc > 0 {
			e.Runner.Concurrency = *conc
		}
		if server != nil && *server != "" {
			e.Runner.Server = *server
		}
		var err error
		switch part {
		case "dev":
			if err := e.embed(); err != nil {
				return fail(2, err)
			}
			err, logCfg = e.validate(), e.Dispatch.Log
			run = func(log *slog.Logger) error {
				return runDev(ctx, &e, log, nil, func(a net.Addr) {
					fmt.Fprintf(stdout, "drover dev: listening on http://%s (%d runners × %d, data in %s)\n", a, e.Runners, e.Runner.Concurrency, e.DataDir)
					fmt.Fprintf(stdout, "drover dev: %s\n", e.durabilityLine())
					fmt.Fprintf(stdout, "try:  drover submit echo '{\"x\":1}' --wait\n")
				})
			}
		case "dispatch":
			err, logCfg = e.Dispatch.Validate(), e.Dispatch.Log
			run = func(log *slog.Logger) error {
				return api.Run(ctx, &e.Dispatch, log, func(a net.Addr) { log.Info("dispatch listening", "addr", a.String()) })
			}
		case "runner":
			err, logCfg = e.Runner.Validate(), e.Runner.Log
			run = func(log *slog.Logger) error { return serve.Run(ctx, &e.Runner, log, nil) }
		case "collect":
			err, logCfg = e.Collect.Validate(), e.Collect.Log
			run = func(log *slog.Logger) error { return collector.Run(ctx, &e.Collect, log) }
		}
		if err != nil {
			return fail(2, err)
		}
		log, _ := logCfg.Logger()
		slog.SetDefault(log) // for the few library logs without a logger of their own (SQS deletes)
		tracing, err := telemetry.SetupTracing(ctx, "drover-"+part)
		if err != nil {
			return fail(2, err)
		}
		defer telemetry.Flush(ctx, tracing, log)
		e.Dispatch.TracerProvider, e.Runner.TracerProvider, e.Collect.TracerProvider = tracing.Provider, tracing.Provider, tracing.Provider
		if err := run(log); err != nil {
			return fail(1, err)
		}
		return 0
	}
}
