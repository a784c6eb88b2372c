// Package serve runs a runner binary of your own: your functions, plus the
// built-ins, behind the same configuration and entry points as Drover's
// runner. The binary is a Lambda bootstrap (provided.al2023) when
// AWS_LAMBDA_RUNTIME_API is set and a long-lived process configured by
// DROVER_* variables otherwise.
//
//	func main() {
//		serve.Runner(func(mux *runner.Mux) {
//			mux.HandleFunc("resize", resize)
//		})
//	}
package serve

import (
	"github.com/droverhq/drover/internal/app"
	_ "github.com/droverhq/drover/internal/drivers" // memq, SQS/SNS, S3, file, DynamoDB, mem
	"github.com/droverhq/drover/runner"
)

// Runner serves a runner with the built-in functions and those register
// adds, and exits the process when it ends.
func Runner(register func(*runner.Mux)) {
	app.Main(app.PartRunner, register)
}
