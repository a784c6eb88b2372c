package e2e

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/droverhq/drover/client"
	"github.com/droverhq/drover/internal/awstest"
	"github.com/droverhq/drover/internal/proctest"
	"github.com/droverhq/drover/pkg/task"
)

var (
	moto      *awstest.Moto
	droverBin string
	stackSeq  atomic.Int64
)

func TestMain(m *testing.M) {
	os.Exit(func() int {
		flag.Parse()
		if testing.Short() {
			fmt.Println("e2e: skipped in -short mode (needs moto_server)")
			return 0
		}
		dir, err := os.MkdirTemp("", "drover-e2e-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		droverBin = filepath.Join(dir, "drover")
		build := exec.Command("go", "build", "-race", "-o", droverBin, "github.com/droverhq/drover/cmd/drover")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: build drover:", err)
			return 1
		}
		moto, err = awstest.Start()
		if awstest.OptedOut(err) {
			fmt.Printf("e2e: %s=1 and no moto_server: skipped\n", awstest.SkipEnv)
			return 0
		}
		if err != nil {
			// The AWS suite is part of make test: a missing emulator is a
			// failure, not a skip.
			fmt.Fprintln(os.Stderr, "e2e:", err)
			return 1
		}
		defer moto.Stop()
		moto.Setenv()
		return m.Run()
	}())
}

// env is one test's stack: AWS resources in the emulator and the
// variables that point Drover's programs at them.
type env struct {
	t     *testing.T
	stack *awstest.Stack
	vars  []string
	procs []*proctest.Proc
}

// newEnv creates a fresh stack for the test and deletes it afterwards.
func newEnv(t *testing.T, opts awstest.StackOptions) *env {
	t.Helper()
	ctx := context.Background()
	prefix := fmt.Sprintf("e2e%d", stackSeq.Add(1))
	st, err := awstest.CreateStack(ctx, prefix, opts)
	if err != nil {
		t.Fatalf("create stack: %v", err)
	}
	e := &env{t: t, stack: st}
	e.vars = append(append(append([]string{}, moto.Env()...), st.Env()...),
		"DROVER_LOG_LEVEL=info", "DROVER_GRACE=2s", "DROVER_HEARTBEAT=1s")
	t.Cleanup(func() {
		for _, p := range e.procs {
			p.Stop()
		}
		if t.Failed() {
			for _, p := range e.procs {
				t.Logf("---- %s log (last 3000 bytes) ----\n%s", p.Name, p.Tail(3000))
			}
		}
		if err := st.Delete(context.Background()); err != nil {
			t.Logf("delete stack: %v", err)
		}
	})
	return e
}

// logTasks logs what each part said of each of the tasks ids (the kept
// tail of its output, up to 1 MiB), for a failure about those tasks.
func (e *env) logTasks(ids []string) {
	for _, id := range ids {
		for _, p := range e.procs {
			if lines := p.Lines(id, 20); len(lines) > 0 {
				e.t.Logf("---- %s of task %s ----\n%s", p.Name, id, strings.Join(lines, "\n"))
			}
		}
	}
}

// start runs `drover <part>` with the env's variables plus extra.
func (e *env) start(name, part string, extra ...string) *proctest.Proc {
	e.t.Helper()
	env := append(append(append([]string{}, e.vars...), "DROVER_RUNNER_NAME="+name), extra...)
	p := proctest.Start(e.t, name, droverBin, []string{part}, env)
	e.procs = append(e.procs, p)
	return p
}

// dispatch starts a dispatch process on a free port and returns a client
// for it once it is ready.
func (e *env) dispatch() *client.Client {
	e.t.Helper()
	addr := proctest.FreeAddr(e.t)
	p := e.start("dispatch", "dispatch", "DROVER_ADDR="+addr)
	p.WaitReady(e.t, "http://"+addr+"/readyz", 30*time.Second)
	return client.New("http://" + addr)
}

// waitAll waits for every task to be terminal and returns the statuses.
func waitAll(t *testing.T, c *client.Client, ids []string, within time.Duration) map[string]*task.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	out := make(map[string]*task.Status, len(ids))
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	var firstErr atomic.Value
	for _, id := range ids {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			st, err := c.Wait(ctx, id, client.WaitOptions{PollWait: 10 * time.Second, MinInterval: 50 * time.Millisecond})
			if err != nil {
				firstErr.CompareAndSwap(nil, fmt.Errorf("task %s: %w (last: %+v)", id, err, st))
				return
			}
			mu.Lock()
			out[id] = st
			mu.Unlock()
		})
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		t.Fatal(err)
	}
	return out
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
