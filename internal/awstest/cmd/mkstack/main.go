// Command mkstack creates Drover's AWS resources (awstest.CreateStack)
// wherever the AWS SDK's variables point, typically a local emulator, and
// prints the DROVER_* variables for them as shell export lines:
//
//	AWS_ENDPOINT_URL=http://127.0.0.1:5000 AWS_REGION=us-east-1 \
//	AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \
//	go run ./internal/awstest/cmd/mkstack -prefix drover
//
// With -delete it removes them instead (it creates any that are missing
// first, to learn their URLs).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/droverhq/drover/internal/awstest"
)

func main() {
	prefix := flag.String("prefix", "drover", "resource name prefix")
	maxReceives := flag.Int("max-receive-count", awstest.DefaultMaxReceiveCount, "receives before a message moves to its dead-letter queue")
	visibility := flag.Duration("visibility", awstest.DefaultVisibilityTimeout, "queues' default visibility timeout")
	allowScans := flag.Bool("allow-scans", false, "add allow_scans=true to DROVER_STATUS")
	del := flag.Bool("delete", false, "delete the stack instead of creating it")
	flag.Parse()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := awstest.CreateStack(ctx, *prefix, awstest.StackOptions{
		MaxReceiveCount:   *maxReceives,
		VisibilityTimeout: *visibility,
		AllowScans:        *allowScans,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkstack:", err)
		os.Exit(1)
	}
	if *del {
		if err := s.Delete(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "mkstack:", err)
			os.Exit(1)
		}
		return
	}
	for _, kv := range s.Env() {
		k, v, _ := strings.Cut(kv, "=")
		fmt.Printf("export %s='%s'\n", k, strings.ReplaceAll(v, "'", `'\''`))
	}
}
