package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/pkg/task"
)

// writeTasksFile writes lines to a tasks.jsonl in a temporary directory.
func writeTasksFile(t *testing.T, lines []string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tasks.jsonl")
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSubmitFileBatches: 2,500 tasks go out as batches of 1,000, 1,000
// and 500 in the file's order, flags fill what lines leave unset, and
// each task's ID and state is printed in order, with progress on stderr.
func TestSubmitFileBatches(t *testing.T) {
	f := setupAPI(t)
	n := 0
	f.mux.HandleFunc("POST /v1/tasks/batch", func(w http.ResponseWriter, r *http.Request) {
		var in struct{ Tasks []task.Spec }
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			writeProblem(w, 400, err.Error())
			return
		}
		var out []task.Status
		for _, sp := range in.Tasks {
			n++
			st := queued()
			st.ID, st.Function = fmt.Sprintf("%026d", n), sp.Function
			out = append(out, st)
		}
		writeJSON(w, 202, map[string]any{"tasks": out})
	})
	lines := []string{"# a comment", ""}
	for i := range 2500 {
		if i == 7 {
			lines = append(lines, `{"function":"echo","args":{"i":7},"queue":"own"}`)
			continue
		}
		lines = append(lines, fmt.Sprintf(`{"function":"echo","args":{"i":%d}}`, i))
	}
	code, out, errOut := runCLI(t, "submit", "--file", writeTasksFile(t, lines), "--queue", "q", "--max-attempts", "5")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	reqs, bodies := f.requests(), f.bodies()
	if len(reqs) != 3 {
		t.Fatalf("requests %q, want 3 batches", reqs)
	}
	for i, want := range []int{1000, 1000, 500} {
		var in struct{ Tasks []task.Spec }
		if err := json.Unmarshal([]byte(bodies[i]), &in); err != nil || len(in.Tasks) != want {
			t.Fatalf("batch %d: %d tasks (%v), want %d", i, len(in.Tasks), err, want)
		}
		for j, sp := range in.Tasks {
			k := i*1000 + j
			wantQueue := "q"
			if k == 7 {
				wantQueue = "own"
			}
			if string(sp.Args) != fmt.Sprintf(`{"i":%d}`, k) || sp.Queue != wantQueue || sp.MaxAttempts != 5 {
				t.Fatalf("batch %d task %d: %+v", i, j, sp)
			}
		}
	}
	outLines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(outLines) != 2500 || outLines[0] != fmt.Sprintf("%026d  queued", 1) || outLines[2499] != fmt.Sprintf("%026d  queued", 2500) {
		t.Fatalf("stdout: %d lines, first %q, last %q", len(outLines), outLines[0], outLines[len(outLines)-1])
	}
	if !strings.Contains(errOut, "submitted 2500/2500 [##############################] 100%") {
		t.Errorf("stderr has no finished progress bar:\n%s", errOut)
	}
}

func TestSubmitFileUsageErrors(t *testing.T) {
	f := setupAPI(t)
	good := writeTasksFile(t, []string{`{"function":"echo"}`})
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"bad json", []string{"--file", writeTasksFile(t, []string{`{"function":"echo"}`, `{"function":`})}, "tasks.jsonl:2: "},
		{"unknown field", []string{"--file", writeTasksFile(t, []string{`{"function":"echo","functon":"x"}`})}, `tasks.jsonl:1: json: unknown field "functon"`},
		{"invalid spec", []string{"--file", writeTasksFile(t, []string{`{"args":1}`})}, "tasks.jsonl:1: "},
		{"two values", []string{"--file", writeTasksFile(t, []string{`{"function":"a"} {"function":"b"}`})}, "more than one JSON value"},
		{"empty", []string{"--file", writeTasksFile(t, []string{"# nothing"})}, "holds no tasks"},
		{"missing", []string{"--file", filepath.Join(t.TempDir(), "none.jsonl")}, "no such file"},
		{"positional", []string{"echo", "--file", good}, "give no function or args"},
		{"key", []string{"--file", good, "--key", "k"}, "--key names one task"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, _, errOut := runCLI(t, append([]string{"submit"}, c.args...)...)
			if code != exitUsage || !strings.Contains(errOut, c.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, errOut, exitUsage, c.want)
			}
		})
	}
	if reqs := f.requests(); len(reqs) != 0 {
		t.Errorf("usage errors sent requests: %q", reqs)
	}
}

// TestDevSubmitFileWaitRetryWatch: on the embedded default, submit
// --file --wait runs 2,300 tasks (230 failing) to their end with a
// progress bar and exit status 1; retry --state failed --function fail
// retries exactly the 230; ls --watch redraws its table until
// interrupted.
func TestDevSubmitFileWaitRetryWatch(t *testing.T) {
	b := setupDev(t, nil)
	t.Setenv("DROVER_URL", b.url)
	var lines []string
	for i := range 2300 {
		if i%10 == 3 {
			lines = append(lines, fmt.Sprintf(`{"function":"fail","args":{"message":"no %d"},"max_attempts":1}`, i))
			continue
		}
		lines = append(lines, fmt.Sprintf(`{"function":"echo","args":{"i":%d}}`, i))
	}
	code, out, errOut := runCLI(t, "submit", "--file", writeTasksFile(t, lines), "--wait")
	if code != exitTaskFailed {
		t.Fatalf("exit %d, want %d (some failed): %s", code, exitTaskFailed, errOut)
	}
	outLines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(outLines) != 2300 {
		t.Fatalf("stdout has %d lines, want 2300", len(outLines))
	}
	failedIDs := map[string]bool{}
	for i, l := range outLines {
		id, state, _ := strings.Cut(l, "  ")
		want := "succeeded"
		if strings.Contains(lines[i], `"fail"`) {
			want = "failed"
			failedIDs[id] = true
		}
		if state != want {
			t.Fatalf("line %d: %q, want %s", i, l, want)
		}
	}
	if len(failedIDs) != 230 {
		t.Fatalf("%d failed tasks, want 230", len(failedIDs))
	}
	for _, want := range []string{"submitted 2300/2300 [", "finished 2300/2300 [##############################] 100%  2070 succeeded, 230 failed"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}

	code, out, errOut = runCLI(t, "retry", "--state", "failed", "--function", "fail")
	if code != 0 {
		t.Fatalf("retry: exit %d: %s", code, errOut)
	}
	retried := 0
	for l := range strings.Lines(out) {
		old, _, ok := strings.Cut(l, " retried as ")
		if !ok || !failedIDs[old] {
			t.Fatalf("retry printed %q", l)
		}
		retried++
	}
	if retried != 230 {
		t.Errorf("retried %d tasks, want the 230 failed ones", retried)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	var wout, werr bytes.Buffer
	if rc := run(ctx, []string{"ls", "--watch", "--interval", "200ms", "--limit", "5"}, &wout, &werr); rc != 0 {
		t.Fatalf("ls --watch: exit %d: %s", rc, werr.String())
	}
	if n := strings.Count(wout.String(), "every 200ms, "); n < 2 || strings.Count(wout.String(), "ID  ") != n {
		t.Errorf("ls --watch drew %d headers and %d tables:\n%s", n, strings.Count(wout.String(), "ID  "), wout.String())
	}
}
