// Package proctest runs programs under test as separate processes: their
// output kept for the test log, a clean stop or a kill -9 on demand, and
// their CPU time, for suites that crash and measure real processes.
package proctest

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Proc is a process a test started.
type Proc struct {
	Name string
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	file *os.File // the whole output, when PROCTEST_LOG_DIR is set
	done chan struct{}
}

// maxOutput bounds the output kept per process; older output is dropped.
const maxOutput = 1 << 20

// Start runs bin with args and an environment of PATH, HOME and env
// (KEY=VALUE, later values win), failing the test if it cannot start.
// With PROCTEST_LOG_DIR set, the process's whole output is also appended
// to DIR/TEST.NAME.log, for a failure that the kept tail does not explain.
func Start(t testing.TB, name, bin string, args []string, env []string) *Proc {
	t.Helper()
	p := &Proc{Name: name, done: make(chan struct{})}
	if dir := os.Getenv("PROCTEST_LOG_DIR"); dir != "" {
		err := os.MkdirAll(dir, 0o755)
		var f *os.File
		if err == nil {
			f, err = os.OpenFile(filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_")+"."+name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		}
		if err != nil {
			t.Fatalf("start %s: PROCTEST_LOG_DIR: %v", name, err)
		}
		p.file = f
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
	p.cmd.Stdout, p.cmd.Stderr = p, p
	p.cmd.SysProcAttr = procAttr()
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		_ = p.cmd.Wait()
		if p.file != nil {
			_ = p.file.Close()
		}
		close(p.done)
	}()
	return p
}

// Write collects the process's output.
func (p *Proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.file != nil {
		_, _ = p.file.Write(b)
	}
	if p.out.Len() > maxOutput {
		p.out.Next(p.out.Len() - maxOutput/2)
	}
	return p.out.Write(b)
}

// Tail returns the last n bytes of the process's output.
func (p *Proc) Tail(n int) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	b := p.out.Bytes()
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// Lines returns up to max lines of the kept output that contain s.
func (p *Proc) Lines(s string, max int) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for line := range strings.Lines(p.out.String()) {
		if strings.Contains(line, s) {
			out = append(out, strings.TrimSuffix(line, "\n"))
			if len(out) == max {
				break
			}
		}
	}
	return out
}

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Kill ends the process at once (SIGKILL), as a crash would, and waits.
func (p *Proc) Kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Dump asks a Go process for the stacks of all its goroutines (SIGQUIT,
// which also ends it) and waits up to 5s for it to exit: what a stuck
// part was waiting on, for the test log.
func (p *Proc) Dump() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
	}
}

// Stop asks the process to shut down (SIGTERM) and waits up to 15s
// before killing it.
func (p *Proc) Stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		p.Kill()
	}
}

// CPU returns the process's user+system CPU time so far (Linux).
func (p *Proc) CPU() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	// The fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const hz = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / hz, nil
}

// FreeAddr returns a loopback address with a port free at the time of the
// call, for a process to listen on.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// WaitReady waits until GET url answers 200, failing t if p exits first
// or within passes.
func (p *Proc) WaitReady(t testing.TB, url string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-p.Done():
			t.Fatalf("%s exited: %s", p.Name, p.Tail(2000))
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after %s: %s", p.Name, within, p.Tail(2000))
		}
	}
}
