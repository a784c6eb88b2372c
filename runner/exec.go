package runner

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/droverhq/drover/pkg/task"
)

// Limits of the exec function.
const (
	// execMaxBundleBytes caps the bytes a bundle may extract to.
	execMaxBundleBytes = 512 << 20
	// execMaxBundleEntries caps the entries of a bundle.
	execMaxBundleEntries = 10_000
	// execMaxLog caps each of stdout and stderr as kept: the first bytes
	// are kept, the rest counted and dropped.
	execMaxLog = 1 << 20
	// execTail is how much of the end of stdout the result quotes.
	execTail = 2 << 10
	// execPipeWait bounds the wait for output once start's process group
	// is killed: a process that left the group may hold the pipes open.
	execPipeWait = 2 * time.Second
)

// execPath is the PATH start runs with unless its env sets one.
const execPath = "/usr/bin:/bin"

// execArgs are the exec function's arguments.
type execArgs struct {
	Bundle  string            `json:"bundle"`
	Argv    []string          `json:"argv"`
	Env     map[string]string `json:"env"`
	Timeout string            `json:"timeout"`
}

// execResult is the exec function's result.
type execResult struct {
	ExitCode         int    `json:"exit_code"`
	StdoutRef        string `json:"stdout_ref"`
	StderrRef        string `json:"stderr_ref"`
	ResultArchiveRef string `json:"result_archive_ref,omitempty"`
	StdoutTail       string `json:"stdout_tail"`
	Truncated        bool   `json:"truncated"`
}

// execFunc runs the executable start from a .tar.gz bundle in bucket, with
// no shell, in a fresh work dir and its own process group. See DESIGN.md.
//
// Each attempt extracts the bundle into a new directory under os.TempDir,
// runs ./start there with only the given env plus PATH, HOME (the work
// dir), DROVER_TASK_ID and DROVER_ATTEMPT, and removes the directory
// afterwards. The whole process group is killed when start exits, when the
// timeout passes and when ctx is done, so no child outlives the attempt.
// Stdout and stderr (each capped at 1 MiB) go to logs/{id}/{attempt}/ in
// the bucket, and a result/ directory left in the work dir is packed to
// results/{id}/{attempt}/result.tar.gz.
//
// A missing or unsafe bundle is a permanent error. A non-zero exit is a
// retryable one, returned with the result so that the logs can be found.
type execFunc struct {
	bucket *blob.Bucket
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

	dir, err := os.MkdirTemp("", "drover-exec-*")
	if err != nil {
		return nil, errorf("create work dir: %w", err)
	}
	defer removeWorkDir(dir)
	if err := e.extract(ctx, args.Bundle, dir); err != nil {
		return nil, errorf("%w", err)
	}

	runCtx, cancel := ctx, context.CancelFunc(func() {})
	if timeout > 0 {
		runCtx, cancel = context.WithTimeout(ctx, timeout)
	}
	defer cancel()
	if deadline, ok := runCtx.Deadline(); ok {
		timeout = time.Until(deadline).Round(time.Millisecond)
	}
	stdout, stderr := &capture{max: execMaxLog}, &capture{max: execMaxLog}
	state, err := runStart(runCtx, dir, args.Argv, execEnv(&args, dir, t), stdout, stderr)
	if errors.Is(err, syscall.ENOEXEC) {
		return nil, errorf("bundle %q: start is not executable: %v: %w", args.Bundle, err, task.ErrPermanent)
	}
	if err != nil {
		return nil, errorf("run start: %w", err)
	}
	killed := !state.Exited() && runCtx.Err() != nil

	res := execResult{
		ExitCode:   state.ExitCode(),
		StdoutRef:  fmt.Sprintf("logs/%s/%d/stdout", t.ID, t.Attempt),
		StderrRef:  fmt.Sprintf("logs/%s/%d/stderr", t.ID, t.Attempt),
		StdoutTail: stdout.tailString(),
		Truncated:  stdout.truncated() || stderr.truncated(),
	}
	// Keep what can be kept even when start failed; only a live ctx can.
	uploadErr := errors.Join(
		stdout.upload(ctx, e.bucket, res.StdoutRef),
		stderr.upload(ctx, e.bucket, res.StderrRef),
	)
	if uploadErr == nil {
		ref := fmt.Sprintf("results/%s/%d/result.tar.gz", t.ID, t.Attempt)
		packed, err := packResult(ctx, e.bucket, dir, ref)
		if err != nil {
			uploadErr = fmt.Errorf("pack result/ to %s: %w", ref, err)
		} else if packed {
			res.ResultArchiveRef = ref
		}
	}
	result, err := task.JSONResult(res)
	if err != nil {
		return nil, errorf("encode result: %w", err)
	}

	switch {
	case killed && errors.Is(runCtx.Err(), context.DeadlineExceeded):
		return result, errorf("start ran past its timeout of %v and was killed: %w", timeout, context.DeadlineExceeded)
	case killed:
		return result, errorf("start killed: %w", ctx.Err())
	case uploadErr != nil:
		return nil, errorf("%w", uploadErr)
	case state.ExitCode() != 0:
		msg := errorf("start exited with code %d", state.ExitCode())
		if !state.Exited() {
			msg = errorf("start killed by %v", state.Sys().(syscall.WaitStatus).Signal())
		}
		if line := stderr.lastLine(); line != "" {
			return result, fmt.Errorf("%w: %s", msg, line)
		}
		return result, msg
	}
	return result, nil
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

// extract extracts bundle key into dir, refusing anything that could land
// outside it: absolute or escaping paths, links and special files. It
// requires a regular executable file start at the root.
func (e *execFunc) extract(ctx context.Context, key, dir string) error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("bundle %q: %s: %w", key, fmt.Sprintf(format, a...), task.ErrPermanent)
	}
	r, err := e.bucket.NewReader(ctx, key, nil)
	if gcerrors.Code(err) == gcerrors.NotFound {
		return fmt.Errorf("bundle %q not found: %w", key, task.ErrPermanent)
	}
	if err != nil {
		return fmt.Errorf("open bundle %q: %w", key, err)
	}
	defer r.Close()
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()

	gz, err := gzip.NewReader(ctxReader{ctx, r})
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("read bundle %q: %w", key, ctx.Err())
		}
		return bad("not a gzip stream: %v", err)
	}
	tr := tar.NewReader(gz)
	var entries int
	var size int64
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("read bundle %q: %w", key, ctx.Err())
			}
			return bad("after %d entries: %v", entries, err)
		}
		if entries++; entries > execMaxBundleEntries {
			return bad("more than %d entries", execMaxBundleEntries)
		}
		name := hdr.Name
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		if !filepath.IsLocal(name) {
			return bad("entry %q: absolute path or path outside the work dir", name)
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			err = root.MkdirAll(name, 0o755)
		case tar.TypeReg:
			if size += hdr.Size; size > execMaxBundleBytes {
				return bad("entry %q: bundle extracts to more than %d bytes", name, execMaxBundleBytes)
			}
			err = extractFile(root, name, hdr.FileInfo().Mode().Perm(), tr)
		case tar.TypeSymlink:
			return bad("entry %q: symlink to %q not allowed", name, hdr.Linkname)
		case tar.TypeLink:
			return bad("entry %q: hard link to %q not allowed", name, hdr.Linkname)
		case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
			return bad("entry %q: device or fifo not allowed", name)
		default:
			return bad("entry %q: unsupported type %q", name, hdr.Typeflag)
		}
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("read bundle %q: %w", key, ctx.Err())
			}
			return fmt.Errorf("bundle %q: extract entry %q: %w", key, name, err)
		}
	}
	info, err := root.Lstat("start")
	if err != nil || !info.Mode().IsRegular() || info.Mode().Perm()&0o100 == 0 {
		return bad("no regular executable file start at its root")
	}
	return nil
}

// extractFile writes the contents of r to name in root, with its exec bits
// kept but no set-id bits, readable and writable by the owner.
func extractFile(root *os.Root, name string, perm fs.FileMode, r io.Reader) error {
	if err := root.MkdirAll(path.Dir(filepath.ToSlash(name)), 0o755); err != nil {
		return err
	}
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm&0o755|0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
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
// tar.gz at key: regular files and directories only, links not followed.
func packResult(ctx context.Context, bucket *blob.Bucket, dir, key string) (bool, error) {
	if info, err := os.Lstat(filepath.Join(dir, "result")); err != nil || !info.IsDir() {
		return false, nil
	}
	root, err := os.OpenRoot(filepath.Join(dir, "result"))
	if err != nil {
		return false, err
	}
	defer root.Close()
	err = writeBlob(ctx, bucket, key, "application/gzip", nil, func(w io.Writer) error {
		gz := gzip.NewWriter(w)
		tw := tar.NewWriter(gz)
		err := fs.WalkDir(root.FS(), ".", func(name string, d fs.DirEntry, err error) error {
			if err != nil || name == "." {
				return err
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			if !d.IsDir() && !d.Type().IsRegular() {
				return nil
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			hdr, err := tar.FileInfoHeader(info, "")
			if err != nil {
				return err
			}
			hdr.Name = name
			if d.IsDir() {
				hdr.Name += "/"
			}
			hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			if d.IsDir() {
				return nil
			}
			f, err := root.Open(name)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.CopyN(tw, f, hdr.Size)
			return err
		})
		return errors.Join(err, tw.Close(), gz.Close())
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
