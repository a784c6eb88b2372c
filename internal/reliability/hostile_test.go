package reliability

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/droverhq/drover/pkg/task"
)

// hostileBodies are requests dispatch must refuse with a 4xx problem.
func hostileBodies() map[string]struct {
	path, ctype string
	body        []byte
} {
	type req = struct {
		path, ctype string
		body        []byte
	}
	const one, batch, js = "/v1/tasks", "/v1/tasks/batch", "application/json"
	return map[string]req{
		"malformed":            {one, js, []byte(`{"function":"rel-echo",`)},
		"deeply nested args":   {one, js, []byte(`{"function":"rel-echo","args":` + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + `}`)},
		"nested batch":         {batch, js, []byte(`{"tasks":[` + strings.Repeat(`{"args":`, 5000) + `1` + strings.Repeat(`}`, 5000) + `]}`)},
		"invalid UTF-8":        {one, js, []byte("{\"function\":\"rel-echo\",\"args\":\"\xff\xfe\"}")},
		"huge body":            {one, js, append(append([]byte(`{"function":"rel-echo","args":"`), bytes.Repeat([]byte("a"), 17<<20)...), []byte(`"}`)...)},
		"unknown field":        {one, js, []byte(`{"function":"rel-echo","functon":"x"}`)},
		"bad duration":         {one, js, []byte(`{"function":"rel-echo","timeout":"soon"}`)},
		"negative timeout":     {one, js, []byte(`{"function":"rel-echo","timeout":"-5s"}`)},
		"duration as number":   {one, js, []byte(`{"function":"rel-echo","delay":30}`)},
		"delay past max":       {one, js, []byte(`{"function":"rel-echo","delay":"13h"}`)},
		"zero attempts":        {one, js, []byte(`{"function":"rel-echo","max_attempts":0}`)},
		"too many attempts":    {one, js, []byte(`{"function":"rel-echo","max_attempts":1000000}`)},
		"bad function name":    {one, js, []byte(`{"function":"../etc/passwd"}`)},
		"no function":          {one, js, []byte(`{"args":{}}`)},
		"two values":           {one, js, []byte(`{"function":"rel-echo"}{"function":"rel-echo"}`)},
		"not an object":        {one, js, []byte(`["rel-echo"]`)},
		"empty":                {one, js, nil},
		"wrong content type":   {one, "text/plain", []byte(`{"function":"rel-echo"}`)},
		"long idempotency key": {one, js, []byte(`{"function":"rel-echo","idempotency_key":"` + strings.Repeat("k", 300) + `"}`)},
		"empty batch":          {batch, js, []byte(`{"tasks":[]}`)},
		"batch with one bad":   {batch, js, []byte(`{"tasks":[{"function":"rel-echo"},{"function":""}]}`)},
		"field named twice":    {one, js, []byte(`{"function":"rel-echo","function":"rel-sleep"}`)},
		"case-folded field":    {one, js, []byte(`{"FUNCTION":"rel-echo"}`)},
		"key twice in a batch": {batch, js, []byte(`{"tasks":[{"function":"rel-echo","idempotency_key":"k"},{"function":"rel-sleep","idempotency_key":"k"}]}`)},
		"oversized batch":      {batch, js, []byte(`{"tasks":[` + strings.TrimSuffix(strings.Repeat(`{"function":"rel-echo"},`, 1001), ",") + `]}`)},
		// Valid keys in refused requests: none of them may be claimed.
		"keyed, one bad in batch": {batch, js, []byte(`{"tasks":[{"function":"rel-echo","idempotency_key":"hostile-1"},{"function":"rel-echo","max_attempts":0,"idempotency_key":"hostile-2"}]}`)},
		"keyed, bad timeout":      {one, js, []byte(`{"function":"rel-echo","timeout":"-1s","idempotency_key":"hostile-3"}`)},
		"keyed, oversized batch":  {batch, js, []byte(`{"tasks":[` + strings.TrimSuffix(strings.Repeat(`{"function":"rel-echo","idempotency_key":"hostile-4"},`, 1001), ",") + `]}`)},
	}
}

// hostileKeys are the idempotency keys of hostileBodies: refused
// requests must leave none of them claimed.
var hostileKeys = []string{"k", "hostile-1", "hostile-2", "hostile-3", "hostile-4"}

func post(t *testing.T, url, path, ctype string, body []byte, hdr map[string]string) (int, string, []byte) {
	req, err := http.NewRequest(http.MethodPost, url+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Timeout: 2 * time.Minute}).Do(req)
	if err != nil {
		return 0, err.Error(), nil
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), raw
}

// TestHostileInput is scenario 8 against a running dispatch: every hostile
// body gets a 4xx problem and leaves nothing enqueued, archived or stored;
// 100 concurrent submits with one idempotency key make one task and one
// message.
func TestHostileInput(t *testing.T) {
	forEach(t, func(t *testing.T, b backend) {
		start := time.Now()
		e := b.newEnv(t, envOpts{})
		bad := 0
		cases := hostileBodies()
		for name, c := range cases {
			code, ctype, raw := post(t, e.DispatchURL(), c.path, c.ctype, c.body, nil)
			if code < 400 || code >= 500 || ctype != "application/problem+json" {
				bad++
				t.Errorf("%s: %d %s %.200s, want 4xx problem+json", name, code, ctype, raw)
			}
		}
		if n := e.Pending(t); n != 0 {
			bad++
			t.Errorf("hostile requests enqueued %d messages", n)
		}
		if objs := listAll(t, e); len(objs) != 0 {
			bad++
			t.Errorf("hostile requests archived %v", objs)
		}
		if page, _, err := e.Store().List(context.Background(), task.ListQuery{Limit: 10}); err != nil || len(page) != 0 {
			bad++
			t.Errorf("hostile requests stored %d tasks (%v)", len(page), err)
		}
		for _, k := range hostileKeys {
			if c, err := e.Store().ReadKey(context.Background(), k); err != nil || c != nil {
				bad++
				t.Errorf("a refused request left idempotency key %q claimed: %+v (%v)", k, c, err)
			}
		}

		// 100 concurrent submits with one key.
		var wg sync.WaitGroup
		ids := make([]string, 100)
		codes := make([]int, 100)
		for i := range 100 {
			wg.Go(func() {
				code, _, raw := post(t, e.DispatchURL(), "/v1/tasks", "application/json",
					[]byte(`{"function":"rel-echo","args":{"k":1},"idempotency_key":"one-key"}`), nil)
				codes[i] = code
				var st task.Status
				if json.Unmarshal(raw, &st) == nil {
					ids[i] = st.ID
				}
			})
		}
		wg.Wait()
		distinct := map[string]bool{}
		for i := range ids {
			if codes[i] != http.StatusAccepted {
				bad++
				t.Errorf("submit %d with the key: %d", i, codes[i])
			}
			distinct[ids[i]] = true
		}
		page, _, err := e.Store().List(context.Background(), task.ListQuery{Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		pending := e.Pending(t)
		if len(distinct) != 1 || len(page) != 1 || pending != 1 {
			bad++
			t.Errorf("one key: %d distinct IDs, %d tasks stored, %d messages enqueued; want 1, 1, 1", len(distinct), len(page), pending)
		}
		report(t, row{
			scenario: "8 hostile input to dispatch", backend: b.name(), submitted: len(cases) + 100, terminal: len(cases) + 100,
			wrong: bad, took: time.Since(start), pass: bad == 0,
			note: fmt.Sprintf("%d hostile bodies → 4xx problem, nothing enqueued/archived/stored, no key claimed; 100 concurrent submits, one key → %d task, %d message; fuzz targets: FuzzDecodeMessage, FuzzDecodeEvent, FuzzSubmit, FuzzSubmitBatch", len(cases), len(page), pending),
		})
	})
}

func listAll(t *testing.T, e env) []string {
	var out []string
	it := e.Archive().Bucket().List(nil)
	for {
		obj, err := it.Next(context.Background())
		if err != nil {
			return out
		}
		out = append(out, obj.Key)
	}
}

// hostileExecTests are runner/exec_hostile_test.go's bundles, one per
// claim of docs/security.md: each must run and pass.
var hostileExecTests = []string{
	"TestExecHostileReadsParentEnv",
	"TestExecHostileReadsOtherWorkDir",
	"TestExecHostileReadsDataDir",
	"TestExecHostileReadsShadow",
	"TestExecHostileForgesResult",
	"TestExecHostileKillsParent",
	"TestExecHostileDaemon",
	"TestExecHostileLimits",
	"TestExecHostileLimitFailsTask",
	"TestExecHostileConcurrent",
	"TestExecNetwork",
	"TestExecHostileNestedNamespaces",
	"TestExecHeartbeatSaysIsolation",
	"TestExecSweepsWorkDirs",
	"TestExecBadBundle",
	"TestExecKillsOrphans",
	"TestExecTimeoutKillsGroup",
}

// skipSandboxEnv opts out of the sandbox's tests on a machine that cannot
// build one (not Linux, not root, no namespaces or cgroups).
const skipSandboxEnv = "DROVER_SKIP_SANDBOX"

// TestExecEscapes is scenario 9: runner/exec_test.go's and
// exec_hostile_test.go's bundles (absolute and .. paths, symlinks, the
// runner's environment, other tasks' work dirs and results, the data
// dir, /etc/shadow, kill -9 $PPID, setsid daemons, every limit, 16 at
// once, network), run as they are. Every one of them must run and pass: a
// skipped one (the machine cannot build a sandbox) fails this test unless
// DROVER_SKIP_SANDBOX=1 says to skip it.
func TestExecEscapes(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go test ./runner/ (not in -short mode)")
	}
	start := time.Now()
	cmd := exec.Command("go", "test", "-count=1", "-json", "-run", "^TestExec", "github.com/droverhq/drover/runner")
	out, err := cmd.Output()
	outcome := map[string]string{} // test -> pass, fail or skip
	var skipped, failed []string
	var output strings.Builder
	for line := range strings.Lines(string(out)) {
		var ev struct{ Action, Test, Output string }
		if json.Unmarshal([]byte(line), &ev) != nil || ev.Test == "" {
			continue
		}
		switch ev.Action {
		case "output":
			output.WriteString(ev.Output)
		case "pass", "fail", "skip":
			outcome[ev.Test] = ev.Action
			if ev.Action == "skip" {
				skipped = append(skipped, ev.Test)
			} else if ev.Action == "fail" {
				failed = append(failed, ev.Test)
			}
		}
	}
	var missing []string
	for _, name := range hostileExecTests {
		if _, ok := outcome[name]; !ok {
			missing = append(missing, name)
		}
	}
	passed := 0
	for _, o := range outcome {
		if o == "pass" {
			passed++
		}
	}
	if err != nil || len(failed) > 0 || len(missing) > 0 {
		t.Logf("%s", output.String())
	}
	if len(skipped) > 0 && len(failed) == 0 && len(missing) == 0 && err == nil && os.Getenv(skipSandboxEnv) == "1" {
		t.Skipf("%s=1: %d exec tests skipped on this machine: %v", skipSandboxEnv, len(skipped), skipped)
	}
	note := fmt.Sprintf("go test -run ^TestExec ./runner/: %d passed, %d failed %v, %d skipped %v, %d hostile checks missing %v",
		passed, len(failed), failed, len(skipped), skipped, len(missing), missing)
	if len(skipped) > 0 {
		note += fmt.Sprintf(" (a skip is a failure here: the machine cannot build the sandbox; %s=1 opts out)", skipSandboxEnv)
	}
	report(t, row{
		scenario: "9 exec bundles that try to escape", backend: "runner/exec*_test.go",
		submitted: len(outcome), terminal: len(outcome), wrong: len(failed) + len(skipped) + len(missing),
		took: time.Since(start),
		pass: err == nil && len(failed) == 0 && len(skipped) == 0 && len(missing) == 0 && passed > 0,
		note: note,
	})
}

// TestQueueOutage is scenario 6 (moto): the emulator is stopped mid-run.
// While it is unreachable dispatch answers 503, never 202; runners back
// off without a busy loop; once it returns, work resumes and every task
// accepted before or after ends right.
func TestQueueOutage(t *testing.T) {
	if moto == nil {
		t.Skip(skipAWSNote)
	}
	start := time.Now()
	var e *motoEnv = motoBackend{}.newEnv(t, envOpts{Visibility: 2 * time.Second}).(*motoEnv)
	col := e.StartCollector("collect").(*osProc)
	rs := []*osProc{e.StartRunner("r0", runnerOpts{Concurrency: 4}).(*osProc), e.StartRunner("r1", runnerOpts{Concurrency: 4}).(*osProc)}
	mk := func(k, n int) ([]task.Spec, []expectation) {
		var specs []task.Spec
		var want []expectation
		for i := range n {
			args := fmt.Appendf(nil, `{"ms":%d,"wave":%d,"i":%d}`, 20+i%50, k, i)
			specs = append(specs, task.Spec{Function: FnSleep, Args: args, MaxAttempts: 10})
			want = append(want, expectation{state: task.Succeeded, result: args, execs: 1})
		}
		return specs, want
	}
	specs, want := mk(1, sc.outage)
	ids := submitAll(t, e.Client(), specs)

	time.Sleep(500 * time.Millisecond) // mid-run
	if err := moto.Pause(); err != nil {
		t.Fatal(err)
	}
	paused := time.Now()
	cpu0 := map[*osProc]time.Duration{}
	for _, p := range append(rs, col) {
		cpu0[p], _ = p.CPU()
	}
	// Submits while the queue is unreachable: 503 problems, never 202.
	var got202, got503, gotOther int
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i := range 4 {
		wg.Go(func() {
			code, _, raw := post(t, e.DispatchURL(), "/v1/tasks", "application/json", fmt.Appendf(nil, `{"function":"rel-echo","args":{"outage":%d}}`, i), nil)
			mu.Lock()
			defer mu.Unlock()
			switch code {
			case http.StatusAccepted:
				got202++
				t.Errorf("dispatch accepted a task while the queue was unreachable: %s", raw)
			case http.StatusServiceUnavailable:
				got503++
			default:
				gotOther++
				t.Errorf("dispatch answered %d while the queue was unreachable: %s", code, raw)
			}
		})
	}
	wg.Wait()
	if d := time.Since(paused); d < 12*time.Second {
		time.Sleep(12*time.Second - d)
	}
	window := time.Since(paused)
	busy := ""
	for _, p := range append(rs, col) {
		c1, err := p.CPU()
		if err != nil {
			t.Fatal(err)
		}
		used := c1 - cpu0[p]
		busy += fmt.Sprintf("%s %s; ", p.Name, used.Round(10*time.Millisecond))
		// A busy loop burns a core; backing off uses next to nothing.
		if used > window/5 {
			t.Errorf("%s used %s of CPU during a %s outage: busy loop?", p.Name, used, window.Round(time.Second))
		}
	}
	if err := moto.Resume(); err != nil {
		t.Fatal(err)
	}
	specs2, want2 := mk(2, sc.outage)
	ids = append(ids, submitAll(t, e.Client(), specs2)...)
	want = append(want, want2...)
	docs := waitTerminal(t, e.Store(), ids, 3*time.Minute)
	terminal, wrong, dups := judge(t, ids, want, docs, e.Executions(t))
	_ = syscall.Getpid
	report(t, row{
		scenario: "6 emulator stopped mid-run", backend: "moto", submitted: len(ids), terminal: terminal,
		duplicates: dups, wrong: wrong + got202 + gotOther, took: time.Since(start),
		pass: terminal == len(ids) && wrong == 0 && got202 == 0 && gotOther == 0 && got503 == 4 && !t.Failed(),
		note: fmt.Sprintf("paused %s: dispatch %d×503, %d×202; CPU while paused: %s work resumed after", window.Round(time.Second), got503, got202, busy),
	})
}
