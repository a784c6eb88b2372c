package runner

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/memblob"

	"github.com/droverhq/drover/pkg/task"
	"github.com/droverhq/drover/runner/sandbox"
)

// entry is one entry of a test bundle.
type entry struct {
	name string
	typ  byte // tar.TypeReg if zero
	body string
	mode int64 // 0o644 if zero
	link string
}

// script is a bundle entry for an executable start running body with sh.
func script(body string) entry {
	return entry{name: "start", body: "#!/bin/sh\n" + body, mode: 0o755}
}

func makeBundle(t *testing.T, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link, Size: int64(len(e.body))}
		if hdr.Typeflag == 0 {
			hdr.Typeflag = tar.TypeReg
		}
		if hdr.Mode == 0 {
			hdr.Mode = 0o644
		}
		if hdr.Typeflag != tar.TypeReg {
			hdr.Size = 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, e.body[:hdr.Size]); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// sandboxed reports whether exec runs bundles isolated on this machine.
func sandboxed() bool { return sandbox.Available() == nil }

// requireSandbox skips t, saying why, where the machine cannot isolate
// bundles. internal/reliability's TestExecEscapes fails on such a skip.
func requireSandbox(t *testing.T) {
	t.Helper()
	if err := sandbox.Available(); err != nil {
		t.Skipf("SKIP: this machine cannot isolate bundles, so a hostile bundle cannot be tested: %v", err)
	}
}

// setupExec returns a mux with the built-ins over an in-memory bucket, and
// the directory that unsafe work dirs are made in. Where the machine
// cannot isolate bundles it allows unsafe exec. It checks at the end that
// no work dir is left behind.
func setupExec(t *testing.T) (*Mux, *blob.Bucket, string) {
	t.Helper()
	return setupExecWith(t, memblob.OpenBucket(nil), ExecConfig{})
}

// setupExecWith is setupExec with bucket and cfg.
func setupExecWith(t *testing.T, bucket *blob.Bucket, cfg ExecConfig) (*Mux, *blob.Bucket, string) {
	t.Helper()
	if !sandboxed() {
		cfg.Unsafe = true
	}
	t.Cleanup(func() { bucket.Close() })
	m := NewMux()
	m.Handle("exec", newExec(bucket, cfg))
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	t.Cleanup(func() {
		left, _ := filepath.Glob(filepath.Join(tmp, "drover-exec-*"))
		if len(left) > 0 {
			t.Errorf("work dirs left behind: %v", left)
		}
	})
	return m, bucket, tmp
}

// execCall runs exec with args; bundle is put at "b.tar.gz" if not nil.
func execCall(ctx context.Context, t *testing.T, m *Mux, bucket *blob.Bucket, bundle []byte, args map[string]any) (execResult, error) {
	t.Helper()
	if bundle != nil {
		putBlob(t, bucket, "b.tar.gz", bundle)
	}
	if _, ok := args["bundle"]; !ok {
		args["bundle"] = "b.tar.gz"
	}
	raw, _ := json.Marshal(args)
	res, err := call(ctx, t, m, "exec", string(raw), 1)
	var out execResult
	if res != nil {
		if jerr := json.Unmarshal(res, &out); jerr != nil {
			t.Fatalf("result %s: %v", res, jerr)
		}
	}
	return out, err
}

// token returns a number no other process has on its command line, for
// tests to find a bundle's processes by (as "sleep TOKEN").
func token() string { return strconv.Itoa(1_000_000 + rand.IntN(8_000_000)) }

// untilRunning is shell that waits until the command started last with &
// runs with $TOKEN among its arguments.
const untilRunning = `until tr '\0' ' ' < /proc/$!/cmdline 2>/dev/null | grep -q "$TOKEN"; do sleep 0.01; done`

// procsWith returns the host pids of live (not zombie) processes whose
// command line has the argument tok.
func procsWith(tok string) []int {
	var pids []int
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		cmdline, err := os.ReadFile(d + "/cmdline")
		if err != nil || !slices.Contains(strings.Split(string(cmdline), "\x00"), tok) {
			continue
		}
		stat, err := os.ReadFile(d + "/stat")
		if i := bytes.LastIndexByte(stat, ')'); err != nil || i < 0 || i+2 >= len(stat) || stat[i+2] == 'Z' {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(d))
		pids = append(pids, pid)
	}
	return pids
}

// watchProcs polls for processes with tok until the returned function is
// called, which returns the most seen at once.
func watchProcs(tok string) func() int {
	stop := make(chan struct{})
	most := make(chan int)
	go func() {
		n := 0
		for {
			n = max(n, len(procsWith(tok)))
			select {
			case <-stop:
				most <- n
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	return func() int { close(stop); return <-most }
}

// waitNoProcs fails t unless no process with tok is left within d (and
// then kills what is).
func waitNoProcs(t *testing.T, tok string, d time.Duration) {
	t.Helper()
	var left []int
	for deadline := time.Now().Add(d); ; time.Sleep(5 * time.Millisecond) {
		if left = procsWith(tok); len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			break
		}
	}
	for _, pid := range left {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	t.Errorf("processes %v (sleep %s) still running %v after the attempt ended", left, tok, d)
}

// untar returns the entries of a tar.gz: name -> body.
func untar(t *testing.T, data []byte) map[string]string {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	files := map[string]string{}
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		files[hdr.Name] = string(body)
	}
}

func TestExecSuccess(t *testing.T) {
	m, bucket, tmp := setupExec(t)
	t.Setenv("DROVER_LEAK", "leaked")
	bundle := makeBundle(t,
		entry{name: "data/", typ: tar.TypeDir, mode: 0o755},
		entry{name: "data/in.txt", body: "input\n"},
		script(`set -e
echo "args:$#:$1:$2"
echo "pwd:$(pwd)"
env
echo "to stderr" >&2
mkdir -p result/sub
cp data/in.txt result/out.txt
echo x > result/sub/x
ln -s /etc/passwd result/link
echo last line
`))
	res, err := execCall(context.Background(), t, m, bucket, bundle, map[string]any{
		"argv":    []string{"a b", "c"},
		"env":     map[string]string{"FOO": "bar"},
		"timeout": "30s",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := execResult{
		StdoutRef:        "logs/T1/1/stdout",
		StderrRef:        "logs/T1/1/stderr",
		ResultArchiveRef: "results/T1/1/result.tar.gz",
	}
	if res.ExitCode != 0 || res.StdoutRef != want.StdoutRef || res.StderrRef != want.StderrRef ||
		res.ResultArchiveRef != want.ResultArchiveRef || res.Truncated {
		t.Errorf("result = %+v, want refs %+v", res, want)
	}
	stdout := string(getBlob(t, bucket, res.StdoutRef))
	if !strings.HasSuffix(res.StdoutTail, "last line\n") || !strings.HasSuffix(stdout, res.StdoutTail) {
		t.Errorf("stdout_tail = %q, stdout = %q", res.StdoutTail, stdout)
	}
	lines := strings.Split(stdout, "\n")
	for _, want := range []string{
		"args:2:a b:c",
		"FOO=bar",
		"PATH=/usr/bin:/bin",
		"DROVER_TASK_ID=T1",
		"DROVER_ATTEMPT=1",
	} {
		if !slices.Contains(lines, want) {
			t.Errorf("stdout has no line %q:\n%s", want, stdout)
		}
	}
	work := tmp + "/drover-exec-"
	if sandboxed() {
		work = "/work\n"
	}
	if !strings.Contains(stdout, "pwd:"+work) || !strings.Contains(stdout, "HOME="+work) {
		t.Errorf("start did not run in a work dir %s... with HOME there:\n%s", work, stdout)
	}
	if strings.Contains(stdout, "DROVER_LEAK") {
		t.Errorf("the runner's environment leaked into start's:\n%s", stdout)
	}
	if got := string(getBlob(t, bucket, res.StderrRef)); got != "to stderr\n" {
		t.Errorf("stderr = %q", got)
	}
	files := untar(t, getBlob(t, bucket, res.ResultArchiveRef))
	wantFiles := map[string]string{"out.txt": "input\n", "sub/": "", "sub/x": "x\n"}
	if fmt.Sprint(files) != fmt.Sprint(wantFiles) {
		t.Errorf("result archive = %v, want %v", files, wantFiles)
	}
}

func TestExecNoResultDir(t *testing.T) {
	m, bucket, _ := setupExec(t)
	res, err := execCall(context.Background(), t, m, bucket, makeBundle(t, script("echo hi")), map[string]any{})
	if err != nil {
		t.Fatal(err)
	}
	if res.ResultArchiveRef != "" || res.StdoutTail != "hi\n" {
		t.Errorf("result = %+v", res)
	}
	if ok, _ := bucket.Exists(context.Background(), "results/T1/1/result.tar.gz"); ok {
		t.Error("result archive uploaded with no result/ dir")
	}
}

func TestExecNonZeroExit(t *testing.T) {
	m, bucket, _ := setupExec(t)
	bundle := makeBundle(t, script("echo out; echo first >&2; echo 'last words' >&2; exit 3"))
	res, err := execCall(context.Background(), t, m, bucket, bundle, map[string]any{})
	if err == nil || err.Error() != "exec T1 attempt 1: start exited with code 3: last words" {
		t.Fatalf("err = %v", err)
	}
	if errors.Is(err, task.ErrPermanent) {
		t.Error("a non-zero exit must be retryable")
	}
	if res.ExitCode != 3 {
		t.Errorf("exit_code = %d, want 3", res.ExitCode)
	}
	if got := string(getBlob(t, bucket, "logs/T1/1/stderr")); got != "first\nlast words\n" {
		t.Errorf("stderr log = %q", got)
	}
}

func TestExecTimeoutKillsGroup(t *testing.T) {
	m, bucket, _ := setupExec(t)
	tok := token()
	bundle := makeBundle(t, script(`sleep $TOKEN &
sleep $TOKEN
`))
	seen := watchProcs(tok)
	start := time.Now()
	_, err := execCall(context.Background(), t, m, bucket, bundle, map[string]any{
		"env":     map[string]string{"TOKEN": tok},
		"timeout": "1s",
	})
	if err == nil || !strings.Contains(err.Error(), "ran past its timeout") || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a timeout", err)
	}
	if errors.Is(err, task.ErrPermanent) {
		t.Error("a timeout must be retryable")
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("exec took %v to time out", d)
	}
	if n := seen(); n != 2 {
		t.Errorf("saw at most %d of start's 2 sleeps running", n)
	}
	waitNoProcs(t, tok, 5*time.Second)
}

func TestExecCancelled(t *testing.T) {
	m, bucket, _ := setupExec(t)
	tok := token()
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		// Cancel once start runs.
		for len(procsWith(tok)) == 0 {
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
	}()
	_, err := execCall(ctx, t, m, bucket, makeBundle(t, script(`sleep $TOKEN`)), map[string]any{
		"env": map[string]string{"TOKEN": tok},
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	waitNoProcs(t, tok, 5*time.Second)
}

func TestExecKillsOrphans(t *testing.T) {
	m, bucket, _ := setupExec(t)
	tok := token()
	bundle := makeBundle(t, script(`sleep $TOKEN &
`+untilRunning+`
echo bye
`))
	start := time.Now()
	res, err := execCall(context.Background(), t, m, bucket, bundle, map[string]any{
		"env": map[string]string{"TOKEN": tok},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.StdoutTail != "bye\n" {
		t.Errorf("stdout_tail = %q", res.StdoutTail)
	}
	waitNoProcs(t, tok, 5*time.Second)
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("exec took %v with a child holding its output", d)
	}
}

func TestExecTruncatesOutput(t *testing.T) {
	m, bucket, _ := setupExec(t)
	bundle := makeBundle(t, script(`yes 0123456789abcdef | head -c 5000000; echo end
yes e | head -c 3000000 >&2`))
	res, err := execCall(context.Background(), t, m, bucket, bundle, map[string]any{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Truncated {
		t.Error("truncated = false")
	}
	for _, key := range []string{res.StdoutRef, res.StderrRef} {
		attrs, err := bucket.Attributes(context.Background(), key)
		if err != nil {
			t.Fatal(err)
		}
		if attrs.Size != execMaxLog || attrs.Metadata["truncated"] != "true" {
			t.Errorf("%s: size %d, metadata %v; want %d bytes, truncated", key, attrs.Size, attrs.Metadata, execMaxLog)
		}
	}
	if len(res.StdoutTail) != execTail || !strings.HasSuffix(res.StdoutTail, "9aend\n") {
		t.Errorf("stdout_tail: %d bytes ending %q", len(res.StdoutTail), res.StdoutTail[max(0, len(res.StdoutTail)-20):])
	}
}

func TestExecBadBundle(t *testing.T) {
	start := script("echo hi")
	tests := []struct {
		name    string
		bundle  func(tmp string) []byte // nil: no bundle in the bucket
		wantErr []string
	}{
		{
			name:    "missing bundle",
			wantErr: []string{`bundle "b.tar.gz" not found`},
		},
		{
			name:    "not gzip",
			bundle:  func(string) []byte { return []byte("plain text") },
			wantErr: []string{`bundle "b.tar.gz"`, "not a gzip stream"},
		},
		{
			name: "absolute path",
			bundle: func(tmp string) []byte {
				return makeBundle(t, start, entry{name: filepath.Join(tmp, "sentinel"), body: "x"})
			},
			wantErr: []string{`bundle "b.tar.gz"`, "/sentinel", "absolute path or path outside the work dir"},
		},
		{
			name: "dot dot",
			bundle: func(string) []byte {
				return makeBundle(t, start, entry{name: "../sentinel", body: "x"})
			},
			wantErr: []string{`entry "../sentinel"`, "outside the work dir"},
		},
		{
			name: "dot dot inside a path",
			bundle: func(string) []byte {
				return makeBundle(t, start, entry{name: "a/../../sentinel", body: "x"})
			},
			wantErr: []string{`entry "a/../../sentinel"`, "outside the work dir"},
		},
		{
			name: "symlink to etc",
			bundle: func(string) []byte {
				return makeBundle(t, start, entry{name: "etc", typ: tar.TypeSymlink, link: "/etc"},
					entry{name: "etc/sentinel", body: "x"})
			},
			wantErr: []string{`entry "etc": symlink to "/etc" not allowed`},
		},
		{
			name: "symlink outside",
			bundle: func(string) []byte {
				return makeBundle(t, start, entry{name: "up", typ: tar.TypeSymlink, link: ".."},
					entry{name: "up/sentinel", body: "x"})
			},
			wantErr: []string{`entry "up": symlink to ".." not allowed`},
		},
		{
			name: "hard link outside",
			bundle: func(tmp string) []byte {
				return makeBundle(t, start, entry{name: "h", typ: tar.TypeLink, link: filepath.Join(tmp, "sentinel")},
					entry{name: "h", body: "x"})
			},
			wantErr: []string{`entry "h": hard link to`, "not allowed"},
		},
		{
			name: "device",
			bundle: func(string) []byte {
				return makeBundle(t, start, entry{name: "null", typ: tar.TypeChar})
			},
			wantErr: []string{`entry "null": device or fifo not allowed`},
		},
		{
			name: "fifo",
			bundle: func(string) []byte {
				return makeBundle(t, start, entry{name: "p", typ: tar.TypeFifo})
			},
			wantErr: []string{`entry "p": device or fifo not allowed`},
		},
		{
			name:    "missing start",
			bundle:  func(string) []byte { return makeBundle(t, entry{name: "begin", body: "#!/bin/sh\n", mode: 0o755}) },
			wantErr: []string{`bundle "b.tar.gz": no regular executable file start at its root`},
		},
		{
			name:    "start not executable",
			bundle:  func(string) []byte { return makeBundle(t, entry{name: "start", body: "#!/bin/sh\n"}) },
			wantErr: []string{"no regular executable file start"},
		},
		{
			name: "start in a subdirectory",
			bundle: func(string) []byte {
				return makeBundle(t, entry{name: "bin/start", body: "#!/bin/sh\n", mode: 0o755})
			},
			wantErr: []string{"no regular executable file start"},
		},
		{
			name: "start a directory",
			bundle: func(string) []byte {
				return makeBundle(t, entry{name: "start/", typ: tar.TypeDir, mode: 0o755})
			},
			wantErr: []string{"no regular executable file start"},
		},
		{
			name: "start not a program",
			bundle: func(string) []byte {
				return makeBundle(t, entry{name: "start", body: "echo no shebang\n", mode: 0o755})
			},
			wantErr: []string{"start is not executable"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, bucket, tmp := setupExec(t)
			var bundle []byte
			if tt.bundle != nil {
				bundle = tt.bundle(tmp)
			}
			_, err := execCall(context.Background(), t, m, bucket, bundle, map[string]any{})
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, task.ErrPermanent) {
				t.Errorf("err = %v, want it permanent", err)
			}
			for _, want := range append(tt.wantErr, "exec T1 attempt 1: ") {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("err = %v, want it to contain %q", err, want)
				}
			}
			if _, err := os.Lstat(filepath.Join(tmp, "sentinel")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("bundle wrote outside its work dir: %v", err)
			}
			if _, err := os.Lstat("/etc/sentinel"); err == nil {
				t.Errorf("bundle wrote /etc/sentinel")
			}
		})
	}
}

func TestExecBadArgs(t *testing.T) {
	tests := []struct {
		name    string
		args    string
		wantErr string
	}{
		{"no bundle", `{}`, "bundle is required"},
		{"unknown field", `{"bundle": "b", "cmd": "x"}`, `unknown field "cmd"`},
		{"argv not strings", `{"bundle": "b", "argv": [1]}`, "argv"},
		{"bad timeout", `{"bundle": "b", "timeout": "soon"}`, "timeout"},
		{"negative timeout", `{"bundle": "b", "timeout": "-1s"}`, "timeout -1s out of range"},
		{"reserved env", `{"bundle": "b", "env": {"HOME": "/"}}`, "env: HOME is set by the runner"},
		{"bad env name", `{"bundle": "b", "env": {"A=B": "x"}}`, `env: bad variable name "A=B"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, _, _ := setupExec(t)
			_, err := call(context.Background(), t, m, "exec", tt.args, 1)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, task.ErrPermanent) {
				t.Errorf("err = %v, want a permanent error containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestExecHeartbeatSaysIsolation checks that a runner's heartbeat (what
// GET /v1/runners lists) says how its exec runs bundles.
func TestExecHeartbeatSaysIsolation(t *testing.T) {
	for _, tt := range []struct {
		name   string
		cfg    ExecConfig
		prefix string
	}{
		{"default", ExecConfig{}, "isolated ("},
		{"unsafe allowed", ExecConfig{Unsafe: true}, "isolated ("},
	} {
		t.Run(tt.name, func(t *testing.T) {
			want := tt.prefix
			if !sandboxed() {
				want = map[bool]string{false: "refused: ", true: "unsafe ("}[tt.cfg.Unsafe]
			}
			e := setupProcess(t, Config{}, func(m *Mux) { m.Handle("exec", newExec(memblob.OpenBucket(nil), tt.cfg)) })
			e.r.Beat(context.Background())
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			d, err := e.events.Receive(ctx)
			if err != nil {
				t.Fatal(err)
			}
			d.Ack()
			_, info, err := task.DecodeEvent(d.Body)
			if err != nil || info == nil {
				t.Fatalf("heartbeat %s: %v", d.Body, err)
			}
			if !strings.HasPrefix(info.Exec, want) {
				t.Errorf("heartbeat exec = %q, want %q...", info.Exec, want)
			}
		})
	}
	// A runner that cannot isolate refuses, and says so.
	e := newExec(memblob.OpenBucket(nil), ExecConfig{err: errors.New(`DROVER_EXEC_UNSAFE="yes": the only value is allow`)})
	if got := e.Isolation(); !strings.HasPrefix(got, "refused: ") || !strings.Contains(got, "DROVER_EXEC_UNSAFE") {
		t.Errorf("isolation with a bad variable = %q", got)
	}
	_, err := e.Handle(context.Background(), &task.Task{ID: "T1", Function: "exec", Args: json.RawMessage(`{"bundle":"b"}`), Attempt: 1})
	if err == nil || !strings.Contains(err.Error(), "exec refused") || !strings.Contains(err.Error(), "DROVER_EXEC_UNSAFE") {
		t.Errorf("exec with a bad variable: err = %v", err)
	}
}

// TestExecSweepsWorkDirs checks that unsafe mode removes the work dirs of
// runners that crashed, and only those.
func TestExecSweepsWorkDirs(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	mk := func(name string) string {
		dir := filepath.Join(tmp, name)
		if err := os.MkdirAll(filepath.Join(dir, "result", "ro"), 0o755); err != nil {
			t.Fatal(err)
		}
		os.Chmod(filepath.Join(dir, "result"), 0o500) // as a bundle may leave it
		return dir
	}
	dead := mk(fmt.Sprintf("drover-exec-%d-123", gone.Process.Pid))
	live := mk(fmt.Sprintf("drover-exec-%d-456", os.Getppid()))
	mine := mk(fmt.Sprintf("drover-exec-%d-789", os.Getpid()))
	old := mk(fmt.Sprintf("drover-exec-%d-000", os.Getpid()))
	before := processStart.Add(-time.Hour)
	if err := os.Chtimes(old, before, before); err != nil {
		t.Fatal(err)
	}
	other := mk("unrelated")
	sweepWorkDirs()
	for dir, want := range map[string]bool{dead: false, live: true, mine: true, old: false, other: true} {
		_, err := os.Stat(dir)
		if kept := err == nil; kept != want {
			t.Errorf("%s: kept %v, want %v", filepath.Base(dir), kept, want)
		}
	}
	for _, d := range []string{live, mine, other} {
		os.Chmod(filepath.Join(d, "result"), 0o700)
		os.RemoveAll(d)
	}
}
