//go:build !unix

package embedded

// privateFiles does nothing where there is no umask.
func privateFiles() {}
