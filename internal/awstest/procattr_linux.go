package awstest

import "syscall"

// procAttr puts moto_server in its own process group (Stop signals the
// group) and has the kernel kill it when the test binary that started it
// dies without calling Stop (go test's -timeout, a kill -9), so a killed
// test run leaves no emulator behind burning CPU.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
