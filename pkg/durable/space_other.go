//go:build !unix

package durable

// diskFree is nil where the free space is not looked up: no reserve.
var diskFree func(string) (int64, int64, error)
