// Package serve runs a runner binary of your own: your functions, plus the
// built-ins, behind the same configuration and entry points as Drover's
// runner. The binary is a Lambda bootstrap (provided.al2023) when
// AWS_LAMBDA_RUNTIME_API is set and a long-lived process configured by
// DROVER_* variables otherwise (see Env).
//
//	func main() {
//		serve.Runner(func(mux *runner.Mux) {
//			mux.HandleFunc("resize", resize)
//		})
//	}
//
// It links the runner and the drivers, not the dispatch API or the
// collector.
package serve

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	_ "github.com/droverhq/drover/internal/drivers" // memq, SQS/SNS, S3, file, DynamoDB, mem
	"github.com/droverhq/drover/internal/envconfig"
	"github.com/droverhq/drover/internal/lambdaedge"
	"github.com/droverhq/drover/internal/telemetry"
	"github.com/droverhq/drover/pkg/awsq"
	"github.com/droverhq/drover/pkg/task"
	"github.com/droverhq/drover/runner"
)

// Runner serves a runner with the built-in functions and those register
// adds, and exits the process when it ends.
func Runner(register func(*runner.Mux)) {
	telemetry.Quiet()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code := run(ctx, register)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, register func(*runner.Mux)) int {
	var e Env
	if err := envconfig.Parse(&e); err != nil {
		fmt.Fprintf(os.Stderr, "drover runner: %v\n", err)
		return 2
	}
	lambda := lambdaedge.Enabled()
	if lambda && e.Log.Format == "" {
		e.Log.Format = "json"
	}
	if err := e.Validate(); err != nil {
		fmt.Fprintf(os.Stderr, "drover runner: %v\n", err)
		return 2
	}
	log, _ := e.Log.Logger()
	slog.SetDefault(log) // for the few library logs without a logger of their own (SQS deletes)
	tracing, err := telemetry.SetupTracing(ctx, "drover-runner")
	if err != nil {
		fmt.Fprintf(os.Stderr, "drover runner: %v\n", err)
		return 2
	}
	defer telemetry.Flush(ctx, tracing, log)
	e.TracerProvider = tracing.Provider
	if !lambda {
		if err := Run(ctx, &e, log, register); err != nil {
			fmt.Fprintf(os.Stderr, "drover runner: %v\n", err)
			return 1
		}
		return 0
	}
	h, err := lambdaHandler(ctx, &e, log, register)
	if err != nil {
		// Printed to the function's log; the runtime reports an init error.
		fmt.Fprintf(os.Stderr, "drover runner: %v\n", err)
		return 1
	}
	lambdaedge.Start(h)
	return 0
}

// lambdaHandler opens the runner's resources once, at cold start, and
// returns its handler of SQS batches.
func lambdaHandler(ctx context.Context, e *Env, log *slog.Logger, register func(*runner.Mux)) (any, error) {
	res, err := e.Open(ctx, log)
	if err != nil {
		return nil, err
	}
	awsCfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("AWS configuration: %w", err)
	}
	client := sqs.NewFromConfig(awsCfg)
	if e.StartedDelay == 0 {
		// An invocation's tasks are short-lived and its events are one
		// batch: keep one "started" event per attempt there.
		e.StartedDelay = -1
	}
	r := e.NewRunner(res, log, e.RunnerName, register)
	return r.LambdaHandler(func(rec lambdaedge.Record) task.LeaseControl {
		return awsq.NewLease(client, rec.QueueURL, rec.ReceiptHandle, rec.ReceiveCount)
	}), nil
}
