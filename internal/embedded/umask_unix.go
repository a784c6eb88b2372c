//go:build unix

package embedded

import "syscall"

// privateFiles makes the files this process creates from now on 0600 (and
// directories 0700) unless it asks for less.
func privateFiles() { syscall.Umask(0o077) }
