//go:build unix

package durable

import "syscall"

// diskFree returns the free space available to the process and the size
// of the file system holding dir.
func diskFree(dir string) (free, size int64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), int64(st.Blocks) * int64(st.Bsize), nil
}
