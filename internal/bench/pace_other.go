//go:build !linux

package bench

func newPacer() pacer { return timerPacer{} }
