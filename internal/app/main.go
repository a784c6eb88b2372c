package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/droverhq/drover/internal/lambdaedge"
	"github.com/droverhq/drover/runner"
)

// Main is the body of the functions/* mains: it serves part as a Lambda
// bootstrap when AWS_LAMBDA_RUNTIME_API is set, and as a long-lived process
// (VM mode) otherwise. register adds functions to a runner (may be nil).
func Main(part Part, register func(*runner.Mux)) {
	os.Exit(run(part, register, os.Stderr))
}

func run(part Part, register func(*runner.Mux), stderr io.Writer) int {
	QuietTelemetry()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, err := Load()
	if err != nil {
		fmt.Fprintf(stderr, "drover %s: %v\n", part, err)
		return 2
	}
	lambda := lambdaedge.Enabled()
	cfg.Lambda = lambda
	if lambda && cfg.LogFormat == "" {
		cfg.LogFormat = "json"
	}
	if err := cfg.Validate(part); err != nil {
		fmt.Fprintf(stderr, "drover %s: %v\n", part, err)
		return 2
	}
	log, err := cfg.Logger()
	if err != nil {
		fmt.Fprintf(stderr, "drover %s: %v\n", part, err)
		return 2
	}
	slog.SetDefault(log) // for the few library logs without a logger of their own (SQS deletes)
	if !lambda {
		switch part {
		case PartDispatch:
			err = cfg.RunDispatch(ctx, log, nil)
		case PartRunner:
			err = cfg.RunRunner(ctx, log, register)
		case PartCollect:
			err = cfg.RunCollect(ctx, log)
		}
		if err != nil {
			fmt.Fprintf(stderr, "drover %s: %v\n", part, err)
			return 1
		}
		return 0
	}
	var h any
	switch part {
	case PartDispatch:
		h, err = cfg.LambdaDispatch(ctx, log)
	case PartRunner:
		h, err = cfg.LambdaRunner(ctx, log, register)
	case PartCollect:
		h, err = cfg.LambdaCollect(ctx, log)
	}
	if err != nil {
		// Printed to the function's log; the runtime reports an init error.
		fmt.Fprintf(stderr, "drover %s: %v\n", part, err)
		return 1
	}
	lambdaedge.Start(h)
	return 0
}
