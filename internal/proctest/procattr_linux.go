package proctest

import "syscall"

// procAttr has the kernel kill a started process when the test binary
// that started it dies without stopping it (go test's -timeout, a kill
// -9), so that a killed test run leaves no runner or CPU hog behind.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
