package sandbox

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// pipeWait bounds the wait for output once the sandbox is gone.
const pipeWait = 2 * time.Second

var (
	probeOnce sync.Once
	probeErr  error
)

// Available returns nil if bundles can run isolated here, or why not.
// The answer is found once, by starting an empty sandbox.
func Available() error {
	probeOnce.Do(func() {
		if os.Geteuid() != 0 {
			probeErr = fmt.Errorf("no sandbox: the runner is not root (uid %d), so it cannot map a dedicated user into a user namespace", os.Geteuid())
			return
		}
		if _, err := findCgroups(); err != nil {
			probeErr = fmt.Errorf("no sandbox: %w", err)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := run(ctx, &Spec{probe: true, Stdout: io.Discard, Stderr: io.Discard}); err != nil {
			probeErr = fmt.Errorf("no sandbox: %w", err)
		}
	})
	return probeErr
}

func describe() string {
	set, _ := findCgroups()
	cg := "cgroup v1 memory+pids"
	if set != nil && set.v2 {
		cg = "cgroup v2"
	}
	return fmt.Sprintf("user, pid, mount, net, ipc, uts namespaces; host uid %d; %s", HostUID+1, cg)
}

func run(ctx context.Context, spec *Spec) (out *Outcome, err error) {
	lim := spec.Limits.WithDefaults()
	cg, err := newCgroup(lim)
	if err != nil {
		return nil, err
	}
	defer cg.remove()

	var files []*os.File // the child's ends, closed once it started
	var ours []*os.File
	defer func() {
		for _, f := range append(files, ours...) {
			f.Close()
		}
	}()
	pipe := func() (r, w *os.File) {
		if err != nil {
			return nil, nil
		}
		r, w, err = os.Pipe()
		return r, w
	}
	ctlR, ctlW := pipe()
	resR, resW := pipe()
	stR, stW := pipe()
	outR, outW := pipe()
	errR, errW := pipe()
	if err != nil {
		return nil, err
	}
	files = []*os.File{ctlR, resW, stW, outW, errW}
	ours = []*os.File{ctlW, resR, stR, outR, errR}

	flags := syscall.CLONE_NEWUSER | syscall.CLONE_NEWPID | syscall.CLONE_NEWNS | syscall.CLONE_NEWIPC |
		syscall.CLONE_NEWUTS | syscall.CLONE_NEWCGROUP
	if !spec.Network {
		flags |= syscall.CLONE_NEWNET
	}
	ids := []syscall.SysProcIDMap{{ContainerID: 0, HostID: HostUID, Size: 1}, {ContainerID: innerUID, HostID: HostUID + 1, Size: 1}}
	cmd := &exec.Cmd{
		Path:       "/proc/self/exe",
		Args:       []string{initName},
		Env:        []string{initEnv + "=1", "GOMAXPROCS=1"},
		Dir:        "/",
		Stdout:     outW,
		Stderr:     errW,
		ExtraFiles: []*os.File{ctlR, resW, stW},
		SysProcAttr: &syscall.SysProcAttr{
			Cloneflags:                 uintptr(flags),
			UidMappings:                ids,
			GidMappings:                ids,
			GidMappingsEnableSetgroups: true,
			Credential:                 &syscall.Credential{Uid: 0, Gid: 0, Groups: []uint32{}},
			Pdeathsig:                  syscall.SIGKILL,
		},
	}
	if cg.v2 {
		dir, err := cg.fd()
		if err != nil {
			return nil, err
		}
		defer dir.Close()
		cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, int(dir.Fd())
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start sandbox: %w", err)
	}
	for _, f := range files {
		f.Close()
	}
	files = nil
	waited := make(chan struct{})
	go func() { cmd.Wait(); close(waited) }()
	kill := func() {
		cmd.Process.Kill()
		<-waited
		cg.kill()
	}
	if !cg.v2 {
		if err := cg.add(cmd.Process.Pid); err != nil {
			kill()
			return nil, err
		}
	}

	// Config, bundle, then silence until the attempt ends.
	cfg := initConfig{Probe: spec.probe, Argv: spec.Argv, Env: spec.Env, BundleSize: spec.BundleSize, Limits: lim}
	sent := make(chan error, 1)
	go func() {
		b, _ := json.Marshal(cfg)
		_, err := ctlW.Write(append(b, '\n'))
		if err == nil && spec.Bundle != nil {
			_, err = io.CopyN(ctlW, spec.Bundle, spec.BundleSize)
		}
		sent <- err
	}()

	var wg sync.WaitGroup
	wg.Go(func() { io.Copy(spec.Stdout, outR) })
	wg.Go(func() { io.Copy(spec.Stderr, errR) })
	var resultErr error
	var result bool
	resultDone := make(chan struct{})
	go func() {
		defer close(resultDone)
		br := bufio.NewReader(resR)
		if _, err := br.Peek(1); err != nil || spec.Result == nil {
			io.Copy(io.Discard, br)
			return
		}
		// The stream is at most the files plus tar headers and gzip
		// framing; more means init is not what it should be.
		limited := &capReader{r: br, n: lim.ResultBytes + int64(lim.ResultFiles+2)*1024 + 1<<20}
		resultErr = spec.Result(limited)
		result = resultErr == nil
		io.Copy(io.Discard, br)
	}()
	var statusLine []byte
	statusDone := make(chan struct{})
	go func() {
		statusLine, _ = io.ReadAll(io.LimitReader(stR, 1<<20))
		close(statusDone)
	}()

	killed := false
	select {
	case <-ctx.Done():
		killed = true
		kill()
	case <-waited:
		cg.kill()
	}
	ctlW.Close()
	<-sent

	drained := make(chan struct{})
	go func() { wg.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(pipeWait):
		outR.Close()
		errR.Close()
		<-drained
	}
	<-resultDone
	<-statusDone

	out = &Outcome{Killed: killed, Usage: cg.usage()}
	if cg.oomKills() > 0 {
		out.Limit = &LimitError{Limit: "memory", Value: FormatBytes(lim.Memory)}
	} else if cg.procsHit() > 0 {
		out.Limit = &LimitError{Limit: "processes", Value: fmt.Sprint(lim.Procs)}
	}
	if killed {
		if out.Limit == nil && spec.probe {
			return nil, ctx.Err()
		}
		return out, nil
	}
	var st initStatus
	if err := json.Unmarshal(statusLine, &st); err != nil {
		if out.Limit != nil {
			// The kernel killed init for the attempt's excess.
			return out, nil
		}
		return nil, fmt.Errorf("sandbox init ended (%v) without a status: %q", cmd.ProcessState, statusLine)
	}
	if st.Error != "" {
		return nil, fmt.Errorf("sandbox init: %s", st.Error)
	}
	if out.Limit == nil {
		out.Limit = st.Limit
	}
	if st.Bundle != "" {
		if out.Limit != nil {
			return out, nil
		}
		return nil, &BundleError{Msg: st.Bundle}
	}
	if resultErr != nil && out.Limit == nil {
		return nil, fmt.Errorf("store result/: %w", resultErr)
	}
	out.Exited, out.ExitCode, out.Signal, out.Result = st.Exited, st.ExitCode, st.Signal, result && st.Result
	if !st.Started && !spec.probe {
		return nil, errors.New("sandbox init: start did not run")
	}
	return out, nil
}

// capReader fails reads past n bytes.
type capReader struct {
	r io.Reader
	n int64
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.n <= 0 {
		return 0, errors.New("result stream longer than its limits allow")
	}
	if int64(len(p)) > c.n {
		p = p[:c.n]
	}
	n, err := c.r.Read(p)
	c.n -= int64(n)
	return n, err
}
