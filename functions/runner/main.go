// Command runner is Drover's runner function with the built-in functions:
// an AWS Lambda bootstrap (provided.al2023) for SQS batches of tasks when
// AWS_LAMBDA_RUNTIME_API is set, a long-lived process configured by
// DROVER_* variables otherwise. The runner is package runner; its process,
// which a runner binary of your own shares, is package runner/serve.
package main

import "github.com/droverhq/drover/runner/serve"

func main() { serve.Runner(nil) }
