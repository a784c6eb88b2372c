// Package awstest starts a local AWS emulator (moto_server) for tests: one
// process per test binary, on a free loopback port, stopped by the same
// code that started it. moto runs with one request handled at a time
// (moto_serial.py): it has no lock around the conditional writes and the
// message receives that AWS makes atomic.
package awstest

import (
	"bufio"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// serialScript runs moto_server with its request handling serialized.
//
//go:embed moto_serial.py
var serialScript string

// Moto is a running moto_server.
type Moto struct {
	// Endpoint is the emulator's base URL, for AWS_ENDPOINT_URL.
	Endpoint string
	cmd      *exec.Cmd
	done     chan struct{}
}

// Region and credentials the emulator is used with.
const (
	Region    = "us-east-1"
	AccountID = "123456789012"
)

// ErrNoEmulator is returned by Start when moto_server is not installed.
var ErrNoEmulator = errors.New("moto_server not found on PATH (install moto[server] 5.x, or set " + SkipEnv + "=1 to skip the AWS tests)")

// SkipEnv names the explicit opt-out: with SkipEnv=1 the tests that need
// moto_server skip, saying so, where it is not installed. Without it a
// missing emulator fails the run, so that make test is never green with no
// AWS test run.
const SkipEnv = "DROVER_SKIP_AWS"

// OptedOut reports whether err from Start means that moto_server is
// missing and the user asked to skip the AWS tests.
func OptedOut(err error) bool {
	return errors.Is(err, ErrNoEmulator) && os.Getenv(SkipEnv) == "1"
}

// Start launches moto_server on a free loopback port and waits until it
// answers. Stop must be called to end it.
func Start() (*Moto, error) {
	bin, err := exec.LookPath("moto_server")
	if err != nil {
		return nil, ErrNoEmulator
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "drover-moto-")
	if err != nil {
		return nil, err
	}
	script := filepath.Join(dir, "moto_serial.py")
	if err := os.WriteFile(script, []byte(serialScript), 0o644); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	py := interpreter(bin)
	cmd := exec.Command(py, script, "-H", "127.0.0.1", "-p", fmt.Sprint(port))
	cmd.SysProcAttr = procAttr()
	var stderr tail
	if os.Getenv("DROVER_MOTO_LOG") == "" {
		cmd.Stdout, cmd.Stderr = nil, &stderr
	} else {
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	}
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start moto_server (%s %s): %w", py, script, err)
	}
	m := &Moto{Endpoint: fmt.Sprintf("http://127.0.0.1:%d", port), cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); os.RemoveAll(dir); close(m.done) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(m.Endpoint + "/moto-api/")
		if err == nil {
			resp.Body.Close()
			return m, nil
		}
		select {
		case <-m.done:
			return nil, fmt.Errorf("moto_server on port %d (%s %s) exited at start: %s", port, py, script, stderr.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			m.Stop()
			return nil, fmt.Errorf("moto_server on port %d did not answer within 30s", port)
		}
	}
}

// Env returns the environment variables that point the AWS SDK at the
// emulator, as KEY=VALUE pairs.
func (m *Moto) Env() []string {
	return []string{
		"AWS_ENDPOINT_URL=" + m.Endpoint,
		"AWS_REGION=" + Region,
		"AWS_DEFAULT_REGION=" + Region,
		"AWS_ACCESS_KEY_ID=test",
		"AWS_SECRET_ACCESS_KEY=test",
		"AWS_EC2_METADATA_DISABLED=true",
	}
}

// Setenv sets Env in this process, for SDK clients built in the test.
func (m *Moto) Setenv() {
	for _, kv := range m.Env() {
		k, v, _ := strings.Cut(kv, "=")
		os.Setenv(k, v)
	}
}

// Reset wipes all emulated resources.
func (m *Moto) Reset(ctx context.Context) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, m.Endpoint+"/moto-api/reset", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("reset moto: %w", err)
	}
	resp.Body.Close()
	return nil
}

// Pause stops the emulator process (SIGSTOP) so that it stops answering,
// as an unreachable endpoint would; Resume continues it.
func (m *Moto) Pause() error  { return syscall.Kill(-m.cmd.Process.Pid, syscall.SIGSTOP) }
func (m *Moto) Resume() error { return syscall.Kill(-m.cmd.Process.Pid, syscall.SIGCONT) }

// Stop ends the emulator this Moto started, and only it.
func (m *Moto) Stop() {
	if m == nil || m.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-m.cmd.Process.Pid, syscall.SIGCONT)
	_ = syscall.Kill(-m.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-m.cmd.Process.Pid, syscall.SIGKILL)
		<-m.done
	}
}

// interpreter returns the Python that runs moto_server: the one its
// script names, or python3 where the script is not Python's own (a pyenv
// shim, say).
func interpreter(bin string) string {
	f, err := os.Open(bin)
	if err == nil {
		defer f.Close()
		line, _ := bufio.NewReader(f).ReadString('\n')
		if fields := strings.Fields(strings.TrimPrefix(line, "#!")); strings.HasPrefix(line, "#!") && len(fields) > 0 {
			prog := fields[0]
			if filepath.Base(prog) == "env" && len(fields) > 1 {
				prog = fields[1]
			}
			if strings.HasPrefix(filepath.Base(prog), "python") {
				return prog
			}
		}
	}
	return "python3"
}

// tail keeps the last 2 KB written to it: moto's output, for the error
// when it does not start.
type tail struct{ b []byte }

func (t *tail) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 2048 {
		t.b = append(t.b[:0], t.b[len(t.b)-2048:]...)
	}
	return len(p), nil
}

func (t *tail) String() string { return strings.TrimSpace(string(t.b)) }

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Shared starts the emulator for a test binary's TestMain and points this
// process's AWS SDK at it. It returns nil (the tests that need it skip)
// only where moto_server is missing and SkipEnv=1 opts out; any other
// start failure, a missing emulator included, ends the process.
func Shared(who string) *Moto {
	m, err := Start()
	if OptedOut(err) {
		fmt.Fprintf(os.Stderr, "%s: %s=1: skipping the tests that need moto_server\n", who, SkipEnv)
		return nil
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", who, err)
		os.Exit(1)
	}
	m.Setenv()
	return m
}
