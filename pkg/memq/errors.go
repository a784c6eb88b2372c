package memq

import (
	"gocloud.dev/gcerrors"

	taskdriver "github.com/droverhq/drover/pkg/task/driver"
)

// Error codes used by this package, mapped onto gcerrors codes.
const (
	codeNotFound = gcerrors.NotFound
	codeInvalid  = gcerrors.InvalidArgument
	codeClosed   = gcerrors.FailedPrecondition
)

var (
	// ErrStaleDelivery is returned by LeaseControl.SetVisibility when the
	// message has been acked or delivered again since that delivery: the
	// caller no longer holds the lease and should stop working on it.
	ErrStaleDelivery error = &taskdriver.Error{Code: gcerrors.FailedPrecondition, Msg: "memq: stale delivery: message acked or redelivered since"}

	errNotFound = taskdriver.Errorf(codeNotFound, "memq: queue does not exist")
	errClosed   = taskdriver.Errorf(codeClosed, "memq: closed")
)
