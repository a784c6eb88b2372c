package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"gocloud.dev/blob"

	"github.com/droverhq/drover/pkg/task"
	"github.com/droverhq/drover/runner/sandbox"
)

// This file is exec without a sandbox, for DROVER_EXEC_UNSAFE=allow on
// machines that cannot isolate: start runs as the runner's user in a work
// dir under os.TempDir, in its own process group, which is killed when
// the attempt ends. It keeps bundles from tripping over each other, not
// from attacking the runner.

// workDirPrefix names unsafe work dirs: drover-exec-PID-random, so that a
// restarted runner can tell its dead predecessors' from its live peers'.
const workDirPrefix = "drover-exec-"

// processStart is when this process started, to tell a dead runner's work
// dirs from ours when PIDs are reused.
var processStart = time.Now()

// sweepWorkDirs removes the work dirs of runners that are gone (a crash
// leaves them behind).
func sweepWorkDirs() {
	ents, _ := os.ReadDir(os.TempDir())
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), workDirPrefix)
		pid, _, ok2 := strings.Cut(rest, "-")
		n, err := strconv.Atoi(pid)
		if !ok || !ok2 || err != nil || !e.IsDir() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		alive := syscall.Kill(n, 0) == nil || errors.Is(syscall.Kill(n, 0), syscall.EPERM)
		if n == os.Getpid() && info.ModTime().After(processStart) || n != os.Getpid() && alive {
			continue
		}
		removeWorkDir(filepath.Join(os.TempDir(), e.Name()))
	}
}

// runUnsafe runs the attempt in a host work dir.
func (e *execFunc) runUnsafe(ctx, runCtx context.Context, t *task.Task, args *execArgs, bundle *blob.Reader,
	stdout, stderr io.Writer, resultRef string) (*execRun, error) {
	dir, err := os.MkdirTemp("", fmt.Sprintf("%s%d-*", workDirPrefix, os.Getpid()))
	if err != nil {
		return nil, fmt.Errorf("create work dir: %w", err)
	}
	defer removeWorkDir(dir)
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	err = sandbox.Extract(ctxReader{ctx, bundle}, root, e.cfg.Limits.BundleFiles, e.cfg.Limits.Disk)
	root.Close()
	if ctx.Err() != nil {
		return nil, fmt.Errorf("read bundle %q: %w", args.Bundle, ctx.Err())
	}
	if err != nil {
		return nil, err
	}

	state, err := runStart(runCtx, dir, args.Argv, execEnv(args, dir, t), stdout, stderr)
	if errors.Is(err, syscall.ENOEXEC) {
		return nil, &sandbox.BundleError{Msg: fmt.Sprintf("start is not executable: %v", err)}
	}
	if err != nil {
		return nil, fmt.Errorf("run start: %w", err)
	}
	run := &execRun{
		exited:   state.Exited(),
		exitCode: state.ExitCode(),
		killed:   !state.Exited() && runCtx.Err() != nil,
	}
	if ws, ok := state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		run.signal = ws.Signal().String()
	}
	if ctx.Err() != nil {
		return run, nil
	}
	run.result, err = packResult(ctx, e.bucket, dir, resultRef, e.cfg.Limits)
	if err != nil {
		var le *sandbox.LimitError
		if errors.As(err, &le) {
			run.limit = le
		} else {
			run.limit = &resultStoreError{fmt.Errorf("pack result/ to %s: %w", resultRef, err)}
		}
	}
	return run, nil
}

// runStart runs dir/start in its own process group and returns its state
// once it has exited, its process group is killed and its output drained.
func runStart(ctx context.Context, dir string, argv, env []string, stdout, stderr io.Writer) (*os.ProcessState, error) {
	// Plain *os.File outputs keep exec from copying them itself: its Wait
	// would then block on any child still holding the pipes.
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer outR.Close()
	errR, errW, err := os.Pipe()
	if err != nil {
		outW.Close()
		return nil, err
	}
	defer errR.Close()

	var cmd *exec.Cmd
	for try := 0; ; try++ {
		cmd = exec.CommandContext(ctx, filepath.Join(dir, "start"), argv...)
		cmd.Args[0] = "./start"
		cmd.Dir = dir
		cmd.Env = env
		cmd.Stdout, cmd.Stderr = outW, errW
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Cancel = func() error { return killGroup(cmd.Process.Pid) }
		err = cmd.Start()
		// ETXTBSY: a concurrent fork elsewhere in this process may briefly
		// hold a copy of the descriptor start was written through.
		if !errors.Is(err, syscall.ETXTBSY) || try == 5 || ctx.Err() != nil {
			break
		}
		time.Sleep(time.Duration(try+1) * 10 * time.Millisecond)
	}
	outW.Close()
	errW.Close()
	if err != nil {
		return nil, err
	}

	var wg sync.WaitGroup
	wg.Go(func() { io.Copy(stdout, outR) })
	wg.Go(func() { io.Copy(stderr, errR) })
	cmd.Wait() // the outcome is in cmd.ProcessState
	killGroup(cmd.Process.Pid)

	drained := make(chan struct{})
	go func() { wg.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(execPipeWait):
		outR.Close()
		errR.Close()
		<-drained
	}
	return cmd.ProcessState, nil
}

// killGroup kills the process group pgid, if any of it is left.
func killGroup(pgid int) error {
	err := syscall.Kill(-pgid, syscall.SIGKILL)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

// packResult packs the result/ directory in dir, if there is one, into a
// tar.gz at key, within lim's result caps.
func packResult(ctx context.Context, bucket *blob.Bucket, dir, key string, lim sandbox.Limits) (bool, error) {
	if info, err := os.Lstat(filepath.Join(dir, "result")); err != nil || !info.IsDir() {
		return false, nil
	}
	root, err := os.OpenRoot(filepath.Join(dir, "result"))
	if err != nil {
		return false, err
	}
	defer root.Close()
	entries, size, err := sandbox.ResultSize(root, lim.ResultFiles, lim.ResultBytes)
	switch {
	case err != nil:
		return false, err
	case entries > lim.ResultFiles:
		return false, &sandbox.LimitError{Limit: "result/ files", Value: strconv.Itoa(lim.ResultFiles)}
	case size > lim.ResultBytes:
		return false, &sandbox.LimitError{Limit: "result/ size", Value: sandbox.FormatBytes(lim.ResultBytes)}
	}
	err = writeBlob(ctx, bucket, key, "application/gzip", nil, func(w io.Writer) error {
		return sandbox.Pack(root, w)
	})
	return err == nil, err
}

// removeWorkDir removes dir, even if start left read-only directories in it.
func removeWorkDir(dir string) {
	if os.RemoveAll(dir) == nil {
		return
	}
	filepath.WalkDir(dir, func(name string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(name, 0o700)
		}
		return nil
	})
	os.RemoveAll(dir)
}
