// Command dispatch is Drover's dispatch function: an AWS Lambda bootstrap
// (provided.al2023) when AWS_LAMBDA_RUNTIME_API is set, a long-lived
// process configured by DROVER_* variables otherwise.
package main

import (
	"github.com/droverhq/drover/internal/app"
	_ "github.com/droverhq/drover/internal/drivers"
)

func main() { app.Main(app.PartDispatch, nil) }
