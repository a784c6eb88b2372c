package memq

import (
	"context"
	"errors"
	"fmt"

	"gocloud.dev/gcerrors"
)

// Error codes used by this package, mapped onto gcerrors codes.
const (
	codeNotFound = gcerrors.NotFound
	codeInvalid  = gcerrors.InvalidArgument
	codeClosed   = gcerrors.FailedPrecondition
)

// codeError is an error that carries its gcerrors code.
type codeError struct {
	code gcerrors.ErrorCode
	msg  string
}

func (e *codeError) Error() string { return e.msg }

func errorf(code gcerrors.ErrorCode, format string, args ...any) error {
	return &codeError{code: code, msg: fmt.Sprintf(format, args...)}
}

var (
	// ErrStaleDelivery is returned by LeaseControl.SetVisibility when the
	// message has been acked or delivered again since that delivery: the
	// caller no longer holds the lease and should stop working on it.
	ErrStaleDelivery error = &codeError{code: gcerrors.FailedPrecondition, msg: "memq: stale delivery: message acked or redelivered since"}

	errNotFound = errorf(codeNotFound, "memq: queue does not exist")
	errClosed   = errorf(codeClosed, "memq: closed")
)

// errorCode maps errors returned by this package to gcerrors codes.
func errorCode(err error) gcerrors.ErrorCode {
	var ce *codeError
	switch {
	case errors.As(err, &ce):
		return ce.code
	case errors.Is(err, context.Canceled):
		return gcerrors.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		return gcerrors.DeadlineExceeded
	}
	return gcerrors.Unknown
}
