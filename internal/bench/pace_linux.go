package bench

import (
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// fdPacer sleeps on a timerfd, which the runtime's network poller watches.
type fdPacer struct {
	fd  int
	f   *os.File
	buf [8]byte
}

// newPacer returns a timerfd pacer, or the portable one if the kernel
// will not make a timerfd.
func newPacer() pacer {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return timerPacer{}
	}
	// A non-blocking descriptor: os.NewFile registers it with the poller,
	// so a Read parks the goroutine there.
	return &fdPacer{fd: fd, f: os.NewFile(uintptr(fd), "bench-pacer")}
}

func (p *fdPacer) sleep(d time.Duration) {
	if d <= 0 {
		return
	}
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(d.Nanoseconds())}
	if err := unix.TimerfdSettime(p.fd, 0, &spec, nil); err != nil {
		time.Sleep(d)
		return
	}
	if _, err := p.f.Read(p.buf[:]); err != nil {
		time.Sleep(d)
	}
}

func (p *fdPacer) close() { p.f.Close() }
