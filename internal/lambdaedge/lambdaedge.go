// Package lambdaedge adapts AWS Lambda events to Drover's handlers: an HTTP
// API (payload format 2.0) or function URL request to an http.Handler, an
// SQS batch to a function over Records, and Records to task deliveries
// (Deliveries). It holds no Drover logic; the mains choose it when Enabled
// reports that they run inside Lambda.
//
// Open topics, buckets and collections once, at cold start, before Start,
// not per invocation.
package lambdaedge

import (
	"os"

	"github.com/aws/aws-lambda-go/lambda"
)

// Enabled reports whether the process runs as a Lambda function, that is
// whether the Lambda Runtime API is there to take invocations from.
func Enabled() bool { return os.Getenv("AWS_LAMBDA_RUNTIME_API") != "" }

// Start serves handler, such as the function HTTP or SQS returns, over the
// Lambda Runtime API, until the process is ended. It does not return.
func Start(handler any) { lambda.Start(handler) }
