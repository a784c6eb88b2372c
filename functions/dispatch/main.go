// Command dispatch is Drover's dispatch function: an AWS Lambda bootstrap
// (provided.al2023) serving function URL and API Gateway HTTP API requests
// when AWS_LAMBDA_RUNTIME_API is set, a long-lived HTTP server configured
// by DROVER_* variables otherwise. Its logic is package api beside it.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/droverhq/drover/functions/dispatch/api"
	_ "github.com/droverhq/drover/internal/drivers"
	"github.com/droverhq/drover/internal/envconfig"
	"github.com/droverhq/drover/internal/lambdaedge"
	"github.com/droverhq/drover/internal/telemetry"
)

func main() {
	telemetry.Quiet()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx))
}

func run(ctx context.Context) int {
	var e api.Env
	if err := envconfig.Parse(&e); err != nil {
		fmt.Fprintf(os.Stderr, "drover dispatch: %v\n", err)
		return 2
	}
	e.Lambda = lambdaedge.Enabled()
	if e.Lambda && e.Log.Format == "" {
		e.Log.Format = "json"
	}
	if err := e.Validate(); err != nil {
		fmt.Fprintf(os.Stderr, "drover dispatch: %v\n", err)
		return 2
	}
	log, _ := e.Log.Logger()
	slog.SetDefault(log) // for the few library logs without a logger of their own (SQS deletes)
	tracing, err := telemetry.SetupTracing(ctx, "drover-dispatch")
	if err != nil {
		fmt.Fprintf(os.Stderr, "drover dispatch: %v\n", err)
		return 2
	}
	defer telemetry.Flush(ctx, tracing, log)
	e.TracerProvider = tracing.Provider
	if !e.Lambda {
		if err := api.Run(ctx, &e, log, nil); err != nil {
			fmt.Fprintf(os.Stderr, "drover dispatch: %v\n", err)
			return 1
		}
		return 0
	}
	// Opened once, at cold start.
	srv, _, err := e.Open(ctx, log)
	if err != nil {
		// Printed to the function's log; the runtime reports an init error.
		fmt.Fprintf(os.Stderr, "drover dispatch: %v\n", err)
		return 1
	}
	lambdaedge.Start(lambdaedge.HTTP(srv))
	return 0
}
