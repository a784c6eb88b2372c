// Command withmoto runs a command against a moto_server it starts, with a
// fresh Drover stack (awstest.CreateStack) on it: the command's
// environment has the AWS_* variables pointing at the emulator and the
// stack's DROVER_* variables. The emulator is stopped when the command
// ends, and withmoto exits with the command's status.
//
//	go run ./internal/awstest/cmd/withmoto go run ./cmd/drover bench --backend env
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"time"

	"github.com/droverhq/drover/internal/awstest"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: withmoto command [argument...]")
		return 2
	}
	m, err := awstest.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "withmoto:", err)
		return 1
	}
	defer m.Stop()
	m.Setenv()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	st, err := awstest.CreateStack(ctx, fmt.Sprintf("withmoto-%d", os.Getpid()), awstest.StackOptions{})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "withmoto:", err)
		return 1
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), st.Env()...)
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return exit.ExitCode()
		}
		fmt.Fprintln(os.Stderr, "withmoto:", err)
		return 1
	}
	return 0
}
