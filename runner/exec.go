package runner

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/droverhq/drover/pkg/task"
	"github.com/droverhq/drover/runner/sandbox"
)

// Limits of the exec function that do not depend on the sandbox.
const (
	// execMaxLog caps each of stdout and stderr as kept: the first bytes
	// are kept, the rest counted and dropped.
	execMaxLog = 1 << 20
	// execTail is how much of the end of stdout the result quotes.
	execTail = 2 << 10
	// execPipeWait bounds the wait for output once start's process group
	// is killed (unsafe mode): a process that left the group may hold the
	// pipes open.
	execPipeWait = 2 * time.Second
)

// execPath is the PATH start runs with unless its env sets one.
const execPath = "/usr/bin:/bin"

// ExecConfig configures the exec function.
type ExecConfig struct {
	// Unsafe lets exec run bundles without isolation where the sandbox
	// is unavailable (DROVER_EXEC_UNSAFE=allow). Bundles then run as the
	// runner's user, see its files and network, and can signal it.
	Unsafe bool
	// Network lets a task's "network": true give its bundle the
	// runner's network (DROVER_EXEC_NETWORK=allow). Without it such
	// tasks fail at once. Bundles never get network otherwise.
	Network bool
	// Limits bound each attempt (sandbox.DefaultLimits for zero fields).
	Limits sandbox.Limits
	// err is why the configuration read from the environment is bad.
	err error
}

// ExecConfigFromEnv reads DROVER_EXEC_UNSAFE and DROVER_EXEC_NETWORK,
// which may each be empty or "allow". RegisterBuiltins uses it, so that
// every runner binary honours them.
func ExecConfigFromEnv() ExecConfig {
	var cfg ExecConfig
	for _, v := range []struct {
		name string
		dst  *bool
	}{{"DROVER_EXEC_UNSAFE", &cfg.Unsafe}, {"DROVER_EXEC_NETWORK", &cfg.Network}} {
		switch val := os.Getenv(v.name); val {
		case "":
		case "allow":
			*v.dst = true
		default:
			cfg.err = errors.Join(cfg.err, fmt.Errorf("%s=%q: the only value is allow", v.name, val))
		}
	}
	return cfg
}

// execArgs are the exec function's arguments.
type execArgs struct {
	Bundle  string            `json:"bundle"`
	Argv    []string          `json:"argv"`
	Env     map[string]string `json:"env"`
	Timeout string            `json:"timeout"`
	Network bool              `json:"network"`
}

// execResult is the exec function's result.
type execResult struct {
	ExitCode         int            `json:"exit_code"`
	StdoutRef        string         `json:"stdout_ref"`
	StderrRef        string         `json:"stderr_ref"`
	ResultArchiveRef string         `json:"result_archive_ref,omitempty"`
	StdoutTail       string         `json:"stdout_tail"`
	Truncated        bool           `json:"truncated"`
	Usage            *sandbox.Usage `json:"usage,omitempty"`
}

// execFunc runs the executable start from a .tar.gz bundle in bucket,
// with no shell, isolated in a sandbox (see package sandbox and
// docs/security.md). See DESIGN.md.
//
// Each attempt extracts the bundle into a fresh work dir, runs ./start
// there with only the given env plus PATH, HOME (the work dir),
// DROVER_TASK_ID and DROVER_ATTEMPT, and removes everything when start
// exits, the timeout passes or ctx is done: no process outlives the
// attempt. Stdout and stderr (each capped at 1 MiB) go to
// logs/{id}/{attempt}/ in the bucket, and a result/ directory left in the
// work dir is packed to results/{id}/{attempt}/result.tar.gz: the runner
// writes both, the bundle cannot reach the bucket.
//
// A missing or unsafe bundle, a limit hit and a bad configuration are
// permanent errors. A non-zero exit or a timeout is a retryable one,
// returned with the result so that the logs can be found. Where the
// sandbox is unavailable exec refuses to run unless cfg.Unsafe.
type execFunc struct {
	bucket *blob.Bucket
	cfg    ExecConfig

	modeOnce sync.Once
	isolated bool
	modeErr  error // why exec refuses to run
	modeNote string
}

// newExec returns the exec function over bucket.
func newExec(bucket *blob.Bucket, cfg ExecConfig) *execFunc {
	cfg.Limits = cfg.Limits.WithDefaults()
	return &execFunc{bucket: bucket, cfg: cfg}
}

// mode finds out once how bundles run here.
func (e *execFunc) mode() (isolated bool, err error) {
	e.modeOnce.Do(func() {
		switch err := sandbox.Available(); {
		case e.cfg.err != nil:
			e.modeErr = fmt.Errorf("exec refused: %w", e.cfg.err)
			e.modeNote = "refused: " + e.cfg.err.Error()
		case err == nil:
			e.isolated = true
			e.modeNote = sandbox.Describe()
		case e.cfg.Unsafe:
			e.modeNote = "unsafe (DROVER_EXEC_UNSAFE=allow): " + err.Error()
			sweepWorkDirs()
		default:
			e.modeErr = fmt.Errorf("exec refused: %w; DROVER_EXEC_UNSAFE=allow runs bundles without isolation", err)
			e.modeNote = "refused: " + err.Error()
		}
	})
	return e.isolated, e.modeErr
}

// Isolation says how this runner runs bundles: "isolated (...)",
// "unsafe (...)" or "refused: ...". Heartbeats carry it.
func (e *execFunc) Isolation() string {
	e.mode()
	return e.modeNote
}

// execRun is how start ended, whichever way it ran.
type execRun struct {
	exited   bool
	exitCode int
	signal   string
	killed   bool // by ctx
	limit    error
	result   bool // result/ archived
	usage    *sandbox.Usage
}

// Handle runs one attempt of t.
func (e *execFunc) Handle(ctx context.Context, t *task.Task) (task.Result, error) {
	errorf := func(format string, a ...any) error {
		return fmt.Errorf("exec %s attempt %d: "+format, append([]any{t.ID, t.Attempt}, a...)...)
	}
	var args execArgs
	if err := decodeArgs(t, &args); err != nil {
		return nil, err
	}
	timeout, err := checkExecArgs(&args)
	if err != nil {
		return nil, badArgs(t, "%v", err)
	}
	if args.Network && !e.cfg.Network {
		return nil, badArgs(t, "network: this runner gives bundles no network (DROVER_EXEC_NETWORK=allow would)")
	}
	isolated, err := e.mode()
	if err != nil {
		return nil, errorf("%w", err)
	}

	r, err := e.bucket.NewReader(ctx, args.Bundle, nil)
	if gcerrors.Code(err) == gcerrors.NotFound {
		return nil, errorf("bundle %q not found: %w", args.Bundle, task.ErrPermanent)
	}
	if err != nil {
		return nil, errorf("open bundle %q: %w", args.Bundle, err)
	}
	defer r.Close()

	runCtx, cancel := ctx, context.CancelFunc(func() {})
	if timeout > 0 {
		runCtx, cancel = context.WithTimeout(ctx, timeout)
	}
	defer cancel()
	if deadline, ok := runCtx.Deadline(); ok {
		timeout = time.Until(deadline).Round(time.Millisecond)
	}
	stdout, stderr := &capture{max: execMaxLog}, &capture{max: execMaxLog}
	res := execResult{
		StdoutRef: task.LogKey(t.ID, t.Attempt, "stdout"),
		StderrRef: task.LogKey(t.ID, t.Attempt, "stderr"),
	}
	resultRef := fmt.Sprintf("results/%s/%d/result.tar.gz", t.ID, t.Attempt)
	var run *execRun
	if isolated {
		run, err = e.runIsolated(ctx, runCtx, t, &args, r, stdout, stderr, resultRef)
	} else {
		run, err = e.runUnsafe(ctx, runCtx, t, &args, r, stdout, stderr, resultRef)
	}
	if be := (*sandbox.BundleError)(nil); errors.As(err, &be) {
		return nil, errorf("bundle %q: %s: %w", args.Bundle, be.Msg, task.ErrPermanent)
	}
	if err != nil {
		return nil, errorf("%w", err)
	}

	res.ExitCode = run.exitCode
	res.StdoutTail = stdout.tailString()
	res.Truncated = stdout.truncated() || stderr.truncated()
	res.Usage = run.usage
	var uploadErr error
	if run.result {
		res.ResultArchiveRef = resultRef
	} else if err, ok := run.limit.(*resultStoreError); ok {
		uploadErr, run.limit = err, nil
	}
	// Keep what can be kept even when start failed; only a live ctx can.
	uploadErr = errors.Join(uploadErr,
		stdout.upload(ctx, e.bucket, res.StdoutRef),
		stderr.upload(ctx, e.bucket, res.StderrRef),
	)
	result, err := task.JSONResult(res)
	if err != nil {
		return nil, errorf("encode result: %w", err)
	}

	lastLine := func(err error) error {
		if line := stderr.lastLine(); line != "" {
			return fmt.Errorf("%w: %s", err, line)
		}
		return err
	}
	switch {
	case run.limit != nil:
		return result, lastLine(errorf("start stopped: %v: %w", run.limit, task.ErrPermanent))
	case run.killed && errors.Is(runCtx.Err(), context.DeadlineExceeded):
		return result, errorf("start ran past its timeout of %v and was killed: %w", timeout, context.DeadlineExceeded)
	case run.killed:
		return result, errorf("start killed: %w", ctx.Err())
	case uploadErr != nil:
		return nil, errorf("%w", uploadErr)
	case !run.exited:
		return result, lastLine(errorf("start killed by %s", run.signal))
	case run.exitCode != 0:
		return result, lastLine(errorf("start exited with code %d", run.exitCode))
	}
	return result, nil
}

// resultStoreError is a failure to store result/, which is retried.
type resultStoreError struct{ err error }

func (e *resultStoreError) Error() string { return e.err.Error() }
func (e *resultStoreError) Unwrap() error { return e.err }

// runIsolated runs the attempt in a sandbox.
func (e *execFunc) runIsolated(ctx, runCtx context.Context, t *task.Task, args *execArgs, bundle *blob.Reader,
	stdout, stderr io.Writer, resultRef string) (*execRun, error) {
	var storeErr error
	out, err := sandbox.Run(runCtx, &sandbox.Spec{
		Bundle:     ctxReader{ctx, bundle},
		BundleSize: bundle.Size(),
		Argv:       args.Argv,
		Env:        execEnv(args, "/work", t),
		Network:    args.Network,
		Limits:     e.cfg.Limits,
		Stdout:     stdout,
		Stderr:     stderr,
		Result: func(r io.Reader) error {
			storeErr = writeBlob(ctx, e.bucket, resultRef, "application/gzip", nil, func(w io.Writer) error {
				return copyTarGz(w, r)
			})
			return storeErr
		},
	})
	if err != nil {
		if storeErr != nil {
			return nil, fmt.Errorf("pack result/ to %s: %w", resultRef, storeErr)
		}
		return nil, err
	}
	run := &execRun{
		exited: out.Exited, exitCode: out.ExitCode, signal: out.Signal,
		killed: out.Killed, result: out.Result, usage: &out.Usage,
	}
	if out.Limit != nil {
		run.limit = out.Limit
	} else if storeErr != nil {
		run.limit = &resultStoreError{fmt.Errorf("pack result/ to %s: %w", resultRef, storeErr)}
	}
	return run, nil
}

// copyTarGz copies the .tar.gz stream r to w, failing unless it is one
// whole and well-formed archive.
func copyTarGz(w io.Writer, r io.Reader) error {
	gz, err := gzip.NewReader(io.TeeReader(r, w))
	if err != nil {
		return err
	}
	gz.Multistream(false)
	tr := tar.NewReader(gz)
	for {
		_, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if _, err := io.Copy(io.Discard, tr); err != nil {
			return err
		}
	}
	if _, err := io.Copy(io.Discard, gz); err != nil {
		return err
	}
	// Whatever follows the archive is not part of it.
	if n, _ := io.Copy(io.Discard, r); n > 0 {
		return fmt.Errorf("%d bytes after the archive", n)
	}
	return nil
}

// checkExecArgs validates args and returns the timeout they set, or 0.
func checkExecArgs(args *execArgs) (time.Duration, error) {
	if args.Bundle == "" {
		return 0, errors.New("bundle is required")
	}
	for i, a := range args.Argv {
		if strings.IndexByte(a, 0) >= 0 {
			return 0, fmt.Errorf("argv[%d] contains a NUL byte", i)
		}
	}
	for k, v := range args.Env {
		switch {
		case k == "" || strings.ContainsAny(k, "=\x00"):
			return 0, fmt.Errorf("env: bad variable name %q", k)
		case strings.IndexByte(v, 0) >= 0:
			return 0, fmt.Errorf("env: %s contains a NUL byte", k)
		case k == "HOME" || k == "DROVER_TASK_ID" || k == "DROVER_ATTEMPT":
			return 0, fmt.Errorf("env: %s is set by the runner", k)
		}
	}
	if args.Timeout == "" {
		return 0, nil
	}
	timeout, err := time.ParseDuration(args.Timeout)
	if err != nil {
		return 0, fmt.Errorf("timeout: %v", err)
	}
	if timeout <= 0 || timeout > task.MaxTimeout {
		return 0, fmt.Errorf("timeout %s out of range (0, %s]", args.Timeout, task.MaxTimeout)
	}
	return timeout, nil
}

// execEnv returns the environment start runs with, sorted.
func execEnv(args *execArgs, dir string, t *task.Task) []string {
	env := map[string]string{"PATH": execPath}
	for k, v := range args.Env {
		env[k] = v
	}
	env["HOME"] = dir
	env["DROVER_TASK_ID"] = t.ID
	env["DROVER_ATTEMPT"] = strconv.Itoa(t.Attempt)
	list := make([]string, 0, len(env))
	for k, v := range env {
		list = append(list, k+"="+v)
	}
	slices.Sort(list)
	return list
}

// capture keeps the first max bytes written to it and the last execTail,
// counting and dropping the rest.
type capture struct {
	max  int
	head []byte
	tail []byte
	n    int64
}

func (c *capture) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	if room := c.max - len(c.head); room > 0 {
		c.head = append(c.head, p[:min(room, len(p))]...)
	}
	c.tail = append(c.tail, p[max(0, len(p)-execTail):]...)
	if extra := len(c.tail) - execTail; extra > 0 {
		c.tail = c.tail[:copy(c.tail, c.tail[extra:])]
	}
	return len(p), nil
}

// truncated reports whether bytes were dropped.
func (c *capture) truncated() bool { return c.n > int64(len(c.head)) }

// tailString returns the end of the output, from a rune start on.
func (c *capture) tailString() string {
	tail := c.tail
	for i := 0; i < utf8.UTFMax-1 && len(tail) > 0 && !utf8.RuneStart(tail[0]) && c.n > int64(len(c.tail)); i++ {
		tail = tail[1:]
	}
	return string(tail)
}

// lastLine returns the last non-empty line of the output.
func (c *capture) lastLine() string {
	s := strings.TrimRight(c.tailString(), "\r\n")
	return strings.TrimSpace(s[strings.LastIndexByte(s, '\n')+1:])
}

// upload writes the kept output to key, noting in its metadata whether,
// and how much, was dropped.
func (c *capture) upload(ctx context.Context, bucket *blob.Bucket, key string) error {
	var md map[string]string
	if c.truncated() {
		md = map[string]string{"truncated": "true", "total_bytes": strconv.FormatInt(c.n, 10)}
	}
	err := writeBlob(ctx, bucket, key, "text/plain", md, func(w io.Writer) error {
		_, err := w.Write(c.head)
		return err
	})
	if err != nil {
		return fmt.Errorf("upload %s: %w", key, err)
	}
	return nil
}

// ctxReader stops reading once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}
