// Command echofn is a Lambda function for lambdatest's own tests: an HTTP
// handler behind lambdaedge.HTTP that echoes the request.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/droverhq/drover/internal/lambdaedge"
)

func main() {
	if os.Getenv("ECHOFN_FAIL_INIT") != "" {
		fmt.Fprintln(os.Stderr, "echofn: ECHOFN_FAIL_INIT is set")
		os.Exit(1)
	}
	if msg := os.Getenv("ECHOFN_INIT_ERROR"); msg != "" {
		// Report an init error the way a custom runtime does, then exit.
		req, _ := http.NewRequest(http.MethodPost,
			"http://"+os.Getenv("AWS_LAMBDA_RUNTIME_API")+"/2018-06-01/runtime/init/error",
			strings.NewReader(`{"errorMessage":"`+msg+`","errorType":"ConfigError"}`))
		req.Header.Set("Lambda-Runtime-Function-Error-Type", "Runtime.ConfigError")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
		os.Exit(1)
	}
	if !lambdaedge.Enabled() {
		fmt.Fprintln(os.Stderr, "echofn: not in Lambda")
		os.Exit(2)
	}
	lambdaedge.Start(lambdaedge.HTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/panic" {
			panic("echofn: asked to panic")
		}
		body, _ := io.ReadAll(r.Body)
		lc, _ := lambdacontext.FromContext(r.Context())
		var arn string
		if lc != nil {
			arn = lc.InvokedFunctionArn
		}
		_, hasDeadline := r.Context().Deadline()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"method":       r.Method,
			"path":         r.URL.Path,
			"body":         string(body),
			"greeting":     os.Getenv("ECHOFN_GREETING"),
			"function_arn": arn,
			"has_deadline": hasDeadline,
		})
	})))
}
