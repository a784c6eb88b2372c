//go:build !linux

package awstest

import "syscall"

// procAttr puts moto_server in its own process group, which Stop signals.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
