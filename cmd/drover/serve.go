package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"

	"github.com/droverhq/drover/internal/app"
	_ "github.com/droverhq/drover/internal/drivers"
)

func serverCommands() map[string]*command {
	return map[string]*command{
		"dev": {
			summary: "run dispatch, runners and collector in one process (the embedded default)",
			run:     serve(app.PartDev),
		},
		"dispatch": {
			summary: "run the dispatch HTTP API as a long-lived process (VM mode)",
			run:     serve(app.PartDispatch),
		},
		"runner": {
			summary: "run a runner with the built-in functions as a long-lived process (VM mode)",
			run:     serve(app.PartRunner),
		},
		"collect": {
			summary: "run the collector (and dead-letter sweeper) as a long-lived process (VM mode)",
			run:     serve(app.PartCollect),
		},
	}
}

// serve runs one part, configured from DROVER_* variables; flags override
// the most common ones.
func serve(part app.Part) func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
		fs := flag.NewFlagSet("drover "+string(part), flag.ContinueOnError)
		fs.SetOutput(stderr)
		addr := fs.String("addr", "", "HTTP listen address (DROVER_ADDR)")
		runners := fs.Int("runners", 0, "runners to start in dev mode (DROVER_RUNNERS)")
		conc := fs.Int("concurrency", 0, "tasks each runner runs at once (DROVER_CONCURRENCY)")
		if err := fs.Parse(args); err != nil {
			return 2
		}
		if fs.NArg() > 0 {
			fmt.Fprintf(stderr, "drover %s: unexpected argument %q\n", part, fs.Arg(0))
			return 2
		}
		cfg, err := app.Load()
		if err != nil {
			fmt.Fprintf(stderr, "drover %s: %v\n", part, err)
			return 2
		}
		if *addr != "" {
			cfg.Addr = *addr
		}
		if *runners > 0 {
			cfg.Runners = *runners
		}
		if *conc > 0 {
			cfg.Concurrency = *conc
		}
		if part == app.PartDev {
			if err := cfg.Embedded(); err != nil {
				fmt.Fprintf(stderr, "drover %s: %v\n", part, err)
				return 2
			}
		}
		if err := cfg.Validate(part); err != nil {
			fmt.Fprintf(stderr, "drover %s: %v\n", part, err)
			return 2
		}
		log, _ := cfg.Logger()
		slog.SetDefault(log) // for the few library logs without a logger of their own (SQS deletes)
		ready := func(a net.Addr) {
			if part == app.PartDev {
				fmt.Fprintf(stdout, "drover dev: listening on http://%s (%d runners × %d, data in %s)\n", a, cfg.Runners, cfg.Concurrency, cfg.DataDir)
				fmt.Fprintf(stdout, "try:  drover submit echo '{\"x\":1}' --wait\n")
			} else {
				log.Info("dispatch listening", "addr", a.String())
			}
		}
		switch part {
		case app.PartDev:
			err = cfg.RunDev(ctx, log, nil, ready)
		case app.PartDispatch:
			err = cfg.RunDispatch(ctx, log, ready)
		case app.PartRunner:
			err = cfg.RunRunner(ctx, log, nil)
		case app.PartCollect:
			err = cfg.RunCollect(ctx, log)
		}
		if err != nil {
			fmt.Fprintf(stderr, "drover %s: %v\n", part, err)
			return 1
		}
		return 0
	}
}
