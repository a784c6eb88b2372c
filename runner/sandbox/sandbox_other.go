//go:build !linux

package sandbox

import (
	"context"
	"errors"
	"runtime"
)

// Available returns why bundles cannot run isolated here: the sandbox is
// built from Linux namespaces and cgroups.
func Available() error {
	return errors.New("no sandbox: exec isolation needs Linux, this is " + runtime.GOOS)
}

func describe() string { return "" }

func run(context.Context, *Spec) (*Outcome, error) { return nil, Available() }
