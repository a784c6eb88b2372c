package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
	"gocloud.dev/blob/memblob"

	"github.com/droverhq/drover/pkg/task"
	"github.com/droverhq/drover/runner/sandbox"
)

// The TestExecHostile tests are bundles written as an attacker would, one
// per claim in docs/security.md. They need the sandbox and skip, saying
// why, where the machine cannot build one; internal/reliability's
// TestExecEscapes fails if any of them skips or does not run.

// runAs runs bundle as task id with args, returning its result, error and
// the stdout and stderr it left in the bucket.
func runAs(ctx context.Context, t *testing.T, m *Mux, bucket *blob.Bucket, id string, bundle []byte, args map[string]any) (execResult, error, string, string) {
	t.Helper()
	key := "bundles/" + id + ".tar.gz"
	putBlob(t, bucket, key, bundle)
	args["bundle"] = key
	raw, _ := json.Marshal(args)
	h, _ := m.Handler("exec")
	res, err := h.Handle(ctx, &task.Task{ID: id, Function: "exec", Args: raw, Attempt: 1})
	var out execResult
	if res != nil {
		if jerr := json.Unmarshal(res, &out); jerr != nil {
			t.Fatalf("result %s: %v", res, jerr)
		}
	}
	// A cancelled attempt cannot upload its logs.
	var stdout, stderr []byte
	if out.StdoutRef != "" {
		stdout, _ = bucket.ReadAll(context.Background(), out.StdoutRef)
		stderr, _ = bucket.ReadAll(context.Background(), out.StderrRef)
	}
	return out, err, string(stdout), string(stderr)
}

// mustRun is runAs for a bundle that must end well, having printed "done".
func mustRun(t *testing.T, m *Mux, bucket *blob.Bucket, id string, bundle []byte, env map[string]string) (string, string) {
	t.Helper()
	_, err, stdout, stderr := runAs(context.Background(), t, m, bucket, id, bundle, map[string]any{"env": env, "timeout": "60s"})
	if err != nil {
		t.Fatalf("%s: %v\nstdout:\n%s\nstderr:\n%s", id, err, stdout, stderr)
	}
	if !strings.Contains(stdout, "done\n") {
		t.Fatalf("%s did not run to its end:\nstdout:\n%s\nstderr:\n%s", id, stdout, stderr)
	}
	return stdout, stderr
}

// fileBucket opens a file:// bucket in a new directory, as drover dev's
// archive is.
func fileBucket(t *testing.T) (*blob.Bucket, string) {
	t.Helper()
	dir := t.TempDir()
	b, err := fileblob.OpenBucket(dir, &fileblob.Options{NoTempDir: true})
	if err != nil {
		t.Fatal(err)
	}
	return b, dir
}

func TestExecHostileReadsParentEnv(t *testing.T) {
	requireSandbox(t)
	// /proc/PID/environ is what the process was started with: the
	// secrets must be there from the start, so the runner is this test
	// run again in a process of its own.
	const child = "DROVER_TEST_ENVIRON_CHILD"
	secret := os.Getenv("DROVER_API_KEYS")
	if os.Getenv(child) != "1" {
		secret = "s3cr3t-" + token()
		cmd := exec.Command(os.Args[0], "-test.run=^TestExecHostileReadsParentEnv$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), child+"=1", "DROVER_API_KEYS="+secret, "AWS_SECRET_ACCESS_KEY="+secret)
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestExecHostileReadsParentEnv") {
			t.Fatalf("the runner with secrets: %v\n%s", err, out)
		}
		return
	}
	if environ, err := os.ReadFile("/proc/self/environ"); err != nil || !strings.Contains(string(environ), secret) {
		t.Fatalf("the runner's own environ lacks its secret: %v", err)
	}
	m, bucket, _ := setupExec(t)
	stdout, stderr := mustRun(t, m, bucket, "T1", makeBundle(t, script(`
cat /proc/$PPID/environ
cat /proc/1/environ
for f in /proc/[0-9]*/environ; do cat "$f"; done
cat /proc/$RUNNER/environ
env
echo done
`)), map[string]string{"RUNNER": fmt.Sprint(os.Getpid())})
	if strings.Contains(stdout+stderr, secret) {
		t.Errorf("the bundle read the runner's secrets:\n%s", stdout)
	}
	if !strings.Contains(stderr, "/proc/1/environ: Permission denied") {
		t.Errorf("reading init's environment did not fail for lack of permission:\n%s", stderr)
	}
}

func TestExecHostileReadsOtherWorkDir(t *testing.T) {
	requireSandbox(t)
	m, bucket, _ := setupExec(t)
	secret := "victim-" + token()
	tok := token()
	victim := makeBundle(t, entry{name: "secret.txt", body: secret}, script(`exec sleep $TOKEN`))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() {
		runAs(ctx, t, m, bucket, "V1", victim, map[string]any{"env": map[string]string{"TOKEN": tok}})
	})
	defer wg.Wait()
	defer cancel()
	var pids []int
	for deadline := time.Now().Add(30 * time.Second); len(pids) == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the victim never started")
		}
		pids = procsWith(tok)
	}
	// The victim's secret is there, seen from the host.
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/root/work/secret.txt", pids[0])); err != nil || string(b) != secret {
		t.Fatalf("victim's work dir from the host: %q, %v", b, err)
	}
	stdout, stderr := mustRun(t, m, bucket, "T1", makeBundle(t, script(`
cat /proc/*/root/work/secret.txt
cat /proc/$VICTIM/root/work/secret.txt /proc/$VICTIM/cwd/secret.txt
cat "$TMPDIR_HOST"/drover-exec-*/secret.txt
grep -rs "$SECRET_PREFIX" /work /tmp /etc /dev /proc/[0-9]*/cwd/
echo done
`)), map[string]string{"VICTIM": fmt.Sprint(pids[0]), "TMPDIR_HOST": os.TempDir(), "SECRET_PREFIX": "victim-"})
	if strings.Contains(stdout+stderr, secret) {
		t.Errorf("the bundle read another task's work dir:\n%s", stdout)
	}
}

func TestExecHostileReadsDataDir(t *testing.T) {
	requireSandbox(t)
	bucket, dataDir := fileBucket(t)
	m, _, _ := setupExecWith(t, bucket, ExecConfig{})
	secret := "payload-" + token()
	putBlob(t, bucket, "payloads/OTHER/args", []byte(secret))
	stdout, stderr := mustRun(t, m, bucket, "T1", makeBundle(t, script(`
cat "$DATA/payloads/OTHER/args"
ls -laR "$DATA"
ls -la /proc/$PPID/cwd/ /proc/1/root/
echo done
`)), map[string]string{"DATA": dataDir})
	if strings.Contains(stdout+stderr, secret) || strings.Contains(stdout, "OTHER") {
		t.Errorf("the bundle read the data dir:\n%s", stdout)
	}
	if !strings.Contains(stderr, dataDir+"/payloads/OTHER/args: No such file or directory") {
		t.Errorf("reading the data dir did not fail with its absence:\n%s", stderr)
	}
}

func TestExecHostileReadsShadow(t *testing.T) {
	requireSandbox(t)
	shadow, err := os.ReadFile("/etc/shadow")
	if err != nil || len(bytes.TrimSpace(shadow)) == 0 {
		// The runner is root: make one to steal.
		shadow = []byte("root:$y$canary" + token() + ":19000:0:99999:7:::\n")
		if err := os.WriteFile("/etc/shadow", shadow, 0o640); err != nil {
			t.Skipf("SKIP: no /etc/shadow and none can be made: %v", err)
		}
		t.Cleanup(func() { os.Remove("/etc/shadow") })
	}
	m, bucket, _ := setupExec(t)
	stdout, stderr := mustRun(t, m, bucket, "T1", makeBundle(t, script(`
cat /etc/shadow
cat /proc/1/root/etc/shadow
cat /.old/etc/shadow
echo done
`)), nil)
	first, _, _ := strings.Cut(string(shadow), "\n")
	if strings.Contains(stdout, first) {
		t.Errorf("the bundle read /etc/shadow:\n%s", stdout)
	}
	if !strings.Contains(stderr, "cat: /etc/shadow: No such file or directory") {
		t.Errorf("stderr = %q", stderr)
	}
}

func TestExecHostileForgesResult(t *testing.T) {
	requireSandbox(t)
	bucket, dataDir := fileBucket(t)
	m, _, _ := setupExecWith(t, bucket, ExecConfig{})
	mustRun(t, m, bucket, "V1", makeBundle(t, script(`mkdir result; echo genuine > result/answer; echo done`)), nil)
	const victimKey = "results/V1/1/result.tar.gz"
	before := getBlob(t, bucket, victimKey)
	if got := untar(t, before)["answer"]; got != "genuine\n" {
		t.Fatalf("victim's result = %q", got)
	}

	_, stderr := mustRun(t, m, bucket, "T1", makeBundle(t, script(`
for f in "$DATA/$KEY" "$DATA/$KEY.attrs" "$DATA/results/V1/2/result.tar.gz" /proc/1/root"$DATA/$KEY"; do
  mkdir -p "$(dirname "$f")"; echo forged > "$f"
done
mkdir -p result/../../results/V1/1; echo forged > result/../../results/V1/1/result.tar.gz
echo mine > result/answer
echo done
`)), map[string]string{"DATA": dataDir, "KEY": victimKey})
	// The paths exist in the sandbox only in its own /tmp, if at all.
	if !strings.Contains(stderr, "Read-only file system") || !strings.Contains(stderr, "Permission denied") {
		t.Errorf("writing outside the work dir did not fail as it should:\n%s", stderr)
	}
	attrs, _ := os.ReadFile(filepath.Join(dataDir, victimKey+".attrs"))
	if strings.Contains(string(attrs), "forged") {
		t.Errorf("victim's result attributes forged: %s", attrs)
	}
	if after := getBlob(t, bucket, victimKey); !bytes.Equal(after, before) {
		t.Errorf("victim's result changed: %q", untar(t, after))
	}
	if ok, _ := bucket.Exists(context.Background(), "results/V1/2/result.tar.gz"); ok {
		t.Error("the bundle created a result for another task")
	}
	if got := untar(t, getBlob(t, bucket, "results/T1/1/result.tar.gz"))["answer"]; got != "mine\n" {
		t.Errorf("the attacker's own result = %q", got)
	}
}

func TestExecHostileKillsParent(t *testing.T) {
	requireSandbox(t)
	m, bucket, _ := setupExec(t)
	stdout, stderr := mustRun(t, m, bucket, "T1", makeBundle(t, script(`
kill -9 $PPID; echo "kill ppid $PPID: $?"
kill -9 1; echo "kill 1: $?"
kill -9 $RUNNER; echo "kill runner: $?"
kill -9 -1; echo "kill -1: $?"
echo done
`)), map[string]string{"RUNNER": fmt.Sprint(os.Getpid())})
	// The kernel drops signals to a PID namespace's init from inside it,
	// and the runner is not in it.
	if err := syscall.Kill(os.Getpid(), 0); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout, "kill ppid 1:") {
		t.Errorf("start's parent is not the sandbox's init:\n%s", stdout)
	}
	t.Logf("stdout:\n%sstderr:\n%s", stdout, stderr)
	// And the runner still runs bundles.
	mustRun(t, m, bucket, "T2", makeBundle(t, script(`echo done`)), nil)
}

func TestExecHostileDaemon(t *testing.T) {
	requireSandbox(t)
	m, bucket, _ := setupExec(t)
	tok := token()
	seen := watchProcs(tok)
	// Three ways to outlive start: setsid, a double fork with nohup, an
	// orphan; start waits until all three run, then ends.
	stdout, _ := mustRun(t, m, bucket, "T1", makeBundle(t, script(`
setsid sh -c 'exec sleep $TOKEN' </dev/null >/dev/null 2>&1 &
(setsid nohup sleep $TOKEN </dev/null >/dev/null 2>&1 &)
sh -c 'sleep $TOKEN &'
running() { for f in /proc/[0-9]*/cmdline; do tr '\0' ' ' < $f 2>/dev/null; echo; done | grep -c "^sleep $TOKEN "; }
until [ "$(running)" = 3 ]; do sleep 0.01; done
echo "daemons: $(running)"
sleep 0.5
echo done
`)), map[string]string{"TOKEN": tok})
	ended := time.Now()
	if !strings.Contains(stdout, "daemons: 3\n") {
		t.Fatalf("the daemons were not all running when start ended:\n%s", stdout)
	}
	if n := seen(); n == 0 {
		t.Fatalf("the host never saw the daemons (sleep %s) run", tok)
	}
	waitNoProcs(t, tok, time.Second)
	if d := time.Since(ended); d > time.Second {
		t.Errorf("the daemons were gone only %v after the attempt's end", d)
	}
}

// TestExecHostileLimits runs a bundle per limit with small limits: each
// ends failed, permanently, with the limit named, and leaves the runner
// able to run the next bundle.
func TestExecHostileLimits(t *testing.T) {
	requireSandbox(t)
	lim := sandbox.Limits{Memory: 64 << 20, Disk: 16 << 20, Procs: 32, CPU: time.Second, ResultBytes: 1 << 20, ResultFiles: 100}
	tests := []struct {
		name, script, want string
	}{
		{"fork bomb", `bomb() { bomb | bomb & }; bomb; sleep 2`, "processes limit of 32 hit"},
		{"memory hog", `tail /dev/zero`, "memory limit of 64 MiB hit"},
		{"disk filler", `head -c 100m /dev/zero > fill; head -c 100m /dev/zero > /tmp/fill; echo wrote $(du -sk fill /tmp/fill)`, "disk limit of 16 MiB hit"},
		{"result bomb bytes", `mkdir result; head -c 2m /dev/urandom > result/big`, "result/ size limit of 1 MiB hit"},
		{"result bomb files", `mkdir result; i=0; while [ $i -lt 200 ]; do : > result/f$i; i=$((i+1)); done`, "result/ files limit of 100 hit"},
		{"cpu burner", `while :; do :; done`, "cpu time limit of 1s hit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, bucket, _ := setupExecWith(t, memblob.OpenBucket(nil), ExecConfig{Limits: lim})
			res, err, stdout, stderr := runAs(context.Background(), t, m, bucket, "T1", makeBundle(t, script(tt.script)),
				map[string]any{"timeout": "60s"})
			if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, task.ErrPermanent) {
				t.Errorf("err = %v, want a permanent error naming %q\nstdout:\n%.2000s\nstderr:\n%.2000s", err, tt.want, stdout, stderr)
			}
			if res.ResultArchiveRef != "" {
				t.Errorf("result archived past a limit: %+v", res)
			}
			if res.Usage == nil || res.Usage.PeakMemory > lim.Memory || res.Usage.PeakProcs > lim.Procs {
				t.Errorf("usage %+v beyond the limits %+v", res.Usage, lim)
			}
			mustRun(t, m, bucket, "T2", makeBundle(t, script(`echo done`)), nil)
		})
	}
}

// TestExecHostileConcurrent runs 16 bundles at once, each filling its
// disk, spawning processes and holding on, and checks the documented
// totals: each within its limits, so all within 16 times them, and
// nothing written to the host's disk.
func TestExecHostileConcurrent(t *testing.T) {
	requireSandbox(t)
	const n = 16
	lim := sandbox.Limits{Memory: 48 << 20, Disk: 16 << 20, Procs: 24}
	m, bucket, tmp := setupExecWith(t, memblob.OpenBucket(nil), ExecConfig{Limits: lim})
	tok := token()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type run struct {
		res            execResult
		err            error
		stdout, stderr string
	}
	runs := make([]run, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			r := &runs[i]
			r.res, r.err, r.stdout, r.stderr = runAs(ctx, t, m, bucket, fmt.Sprintf("T%d", i), makeBundle(t, script(`
{ head -c 100m /dev/zero > fill; } 2>&1
for i in 1 2 3 4; do sleep $TOKEN & done
echo "disk $(du -sk /work | cut -f1) KiB"
exec sleep $TOKEN
`)), map[string]any{"env": map[string]string{"TOKEN": tok}, "timeout": "5m"})
		})
	}
	// Hold on until all 16 run at once, or give up.
	all := false
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if len(procsWith(tok)) == 5*n {
			all = true
			break
		}
	}
	var hostBytes int64
	filepath.Walk(tmp, func(_ string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			hostBytes += info.Size()
		}
		return nil
	})
	cancel()
	wg.Wait()
	if !all {
		for i, r := range runs {
			t.Logf("T%d: %v\n%s%s", i, r.err, r.stdout, r.stderr)
		}
		t.Fatalf("the %d bundles never all ran at once", n)
	}
	if hostBytes != 0 {
		t.Errorf("bundles wrote %d bytes to the host's temp dir", hostBytes)
	}
	var total int64
	for i, r := range runs {
		if !errors.Is(r.err, context.Canceled) {
			t.Errorf("T%d: err = %v, want it cancelled", i, r.err)
		}
		if r.res.Usage == nil {
			t.Errorf("T%d: no usage: %+v", i, r.res)
			continue
		}
		u := r.res.Usage
		total += u.PeakMemory
		if u.PeakMemory > lim.Memory || u.PeakProcs > lim.Procs {
			t.Errorf("T%d: usage %+v beyond the limits %+v", i, u, lim)
		}
		// Cancelled, they could not upload logs: the tail is in the result.
		out := r.res.StdoutTail
		if !strings.Contains(out, "No space left on device") {
			t.Errorf("T%d: its disk did not fill:\n%s", i, out)
		}
		var disk int64
		if _, err := fmt.Sscanf(out[strings.Index(out, "disk "):], "disk %d KiB", &disk); err != nil || disk<<10 > lim.Disk || disk<<10 < lim.Disk/2 {
			t.Errorf("T%d: disk use %q, want near %d bytes", i, out, lim.Disk)
		}
	}
	if total > n*lim.Memory {
		t.Errorf("the bundles used %d bytes of memory together, more than %d", total, n*lim.Memory)
	}
	t.Logf("16 bundles at once: peak memory %d MiB together (cap %d MiB), host temp dir %d bytes", total>>20, n*lim.Memory>>20, hostBytes)
	waitNoProcs(t, tok, 5*time.Second)
}

func TestExecHostileNestedNamespaces(t *testing.T) {
	requireSandbox(t)
	m, bucket, _ := setupExec(t)
	stdout, stderr := mustRun(t, m, bucket, "T1", makeBundle(t, script(`
unshare --user --map-root-user --mount sh -c 'mount -t tmpfs none /work && echo mounted'
echo "unshare: $?"
echo done
`)), nil)
	if strings.Contains(stdout, "mounted") || !strings.Contains(stdout, "unshare: 1") {
		t.Errorf("the bundle made a user namespace of its own:\n%s\n%s", stdout, stderr)
	}
}

// TestExecNetwork checks that a bundle has no network unless its task
// asks and the runner allows it.
func TestExecNetwork(t *testing.T) {
	requireSandbox(t)
	probe := makeBundle(t, script(`cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' ' | sort | tr '\n' ' '; echo; echo done`))
	m, bucket, _ := setupExec(t)
	stdout, _ := mustRun(t, m, bucket, "T1", probe, nil)
	if got := strings.TrimSpace(strings.Split(stdout, "\n")[0]); got != "lo" {
		t.Errorf("network interfaces without network = %q, want only lo (down)", got)
	}
	_, err, _, _ := runAs(context.Background(), t, m, bucket, "T2", probe, map[string]any{"network": true})
	if err == nil || !strings.Contains(err.Error(), "DROVER_EXEC_NETWORK") || !errors.Is(err, task.ErrPermanent) {
		t.Errorf("network asked of a runner that does not allow it: err = %v", err)
	}

	host, err := os.ReadFile("/proc/net/dev")
	if err != nil {
		t.Fatal(err)
	}
	m, bucket, _ = setupExecWith(t, memblob.OpenBucket(nil), ExecConfig{Network: true})
	res, err, stdout, _ := runAs(context.Background(), t, m, bucket, "T3", probe, map[string]any{"network": true})
	if err != nil {
		t.Fatal(err, res)
	}
	if strings.Count(string(host), ":") > 1 && strings.TrimSpace(strings.Split(stdout, "\n")[0]) == "lo" {
		t.Errorf("network on: the bundle sees only lo, the host has:\n%s", host)
	}
}

// TestExecHostileLimitFailsTask runs a memory hog through a whole runner:
// its task ends failed at its first attempt (not retried) with the limit
// named, and the same runner then runs the next bundle.
func TestExecHostileLimitFailsTask(t *testing.T) {
	requireSandbox(t)
	bucket := memblob.OpenBucket(nil)
	defer bucket.Close()
	lim := sandbox.Limits{Memory: 64 << 20}
	e := setupProcess(t, Config{}, func(m *Mux) { m.Handle("exec", newExec(bucket, ExecConfig{Limits: lim})) })
	putBlob(t, bucket, "hog.tar.gz", makeBundle(t, script(`tail /dev/zero`)))
	putBlob(t, bucket, "ok.tar.gz", makeBundle(t, script(`echo fine`)))
	for _, tt := range []struct {
		bundle string
		phase  task.Phase
		err    string
	}{
		{"hog.tar.gz", task.PhaseFailed, "memory limit of 64 MiB hit"},
		{"ok.tar.gz", task.PhaseSucceeded, ""},
	} {
		ids := e.submit(t, "exec", json.RawMessage(`{"bundle":"`+tt.bundle+`"}`), 1)
		e.r.Process(context.Background(), e.receive(t, 1)[0])
		var last *task.Event
		for _, ev := range e.drainEvents(t) {
			if ev.TaskID == ids[0] {
				last = ev
			}
		}
		if last == nil || last.Phase != tt.phase || last.Attempt != 1 || !strings.Contains(last.Error, tt.err) {
			t.Errorf("%s: last event %+v, want %s at attempt 1 with %q", tt.bundle, last, tt.phase, tt.err)
		}
	}
}
