package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/droverhq/drover/pkg/task"
)

const testID = "01JD3V8ZQ6B1Y4T0KX9M2N5P7R"

// fakeAPI stands in for the dispatcher: it records the requests it gets and
// answers them with the handlers a test registers on mux.
type fakeAPI struct {
	mux *http.ServeMux

	mu   sync.Mutex
	reqs []string // "METHOD /path?query"
	body []string
	auth []string
}

// setupAPI starts a fake dispatcher and points DROVER_URL at it.
func setupAPI(t *testing.T) *fakeAPI {
	t.Helper()
	f := &fakeAPI{mux: http.NewServeMux()}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(b))
		f.mu.Lock()
		f.reqs = append(f.reqs, r.Method+" "+r.URL.RequestURI())
		f.body = append(f.body, string(b))
		f.auth = append(f.auth, r.Header.Get("Authorization"))
		f.mu.Unlock()
		f.mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	t.Setenv("DROVER_URL", srv.URL)
	t.Setenv("DROVER_API_KEY", "")
	return f
}

func (f *fakeAPI) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.reqs)
}

func (f *fakeAPI) bodies() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.body)
}

func (f *fakeAPI) auths() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.auth)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	if s, ok := v.(string); ok {
		io.WriteString(w, s)
		return
	}
	json.NewEncoder(w).Encode(v)
}

func writeProblem(w http.ResponseWriter, code int, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(code)
	fmt.Fprintf(w, `{"type":"about:blank","title":%q,"status":%d,"detail":%q}`, http.StatusText(code), code, detail)
}

var (
	t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	t1 = t0.Add(time.Second)
	t2 = t1.Add(12 * time.Millisecond)
)

func queued() task.Status {
	return task.Status{ID: testID, Function: "echo", Queue: "default", State: task.Queued, MaxAttempts: 3, CreatedAt: t0}
}

func succeeded() task.Status {
	st := queued()
	st.State, st.Attempt, st.StartedAt, st.FinishedAt, st.Runner = task.Succeeded, 1, t1, t2, "r1"
	st.Result = json.RawMessage(`{ "x": 1 }`)
	return st
}

func failed() task.Status {
	st := succeeded()
	st.State, st.Attempt, st.Result, st.Error = task.Failed, 3, nil, "boom\nstack trace"
	return st
}

// runCLI runs the drover command line and returns its exit code and output.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(t.Context(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// serveTask answers GET /v1/tasks/{id} with the statuses in turn, repeating
// the last one.
func serveTask(f *fakeAPI, statuses ...task.Status) {
	var mu sync.Mutex
	n := 0
	f.mux.HandleFunc("GET /v1/tasks/{id}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") != testID {
			writeProblem(w, 404, "no task "+r.PathValue("id"))
			return
		}
		mu.Lock()
		st := statuses[min(n, len(statuses)-1)]
		n++
		mu.Unlock()
		writeJSON(w, 200, st)
	})
}

func acceptSubmit(f *fakeAPI) {
	f.mux.HandleFunc("POST /v1/tasks", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", "/v1/tasks/"+testID)
		writeJSON(w, 202, queued())
	})
}

func TestSubmit(t *testing.T) {
	f := setupAPI(t)
	acceptSubmit(f)
	code, out, errOut := runCLI(t, "submit", "echo", `{"x": 1}`)
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if want := testID + "  queued\n"; out != want {
		t.Errorf("stdout %q, want %q", out, want)
	}
	if want := `{"function":"echo","args":{"x":1}}`; f.bodies()[0] != want {
		t.Errorf("request body %s, want %s", f.bodies()[0], want)
	}
}

func TestSubmitFlagsAfterArgsAndWait(t *testing.T) {
	f := setupAPI(t)
	acceptSubmit(f)
	serveTask(f, queued(), succeeded())
	t.Setenv("DROVER_API_KEY", "sekrit")
	code, out, errOut := runCLI(t, "submit", "echo", `{"x":1}`, "--wait", "--queue", "q1",
		"--timeout", "30s", "--max-attempts=2", "--delay", "10s", "--key", "k-1")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	want := `{"function":"echo","args":{"x":1},"queue":"q1","timeout":"30s","max_attempts":2,"idempotency_key":"k-1","delay":"10s"}`
	if f.bodies()[0] != want {
		t.Errorf("request body\n got %s\nwant %s", f.bodies()[0], want)
	}
	for i, a := range f.auths() {
		if a != "Bearer sekrit" {
			t.Errorf("request %d: Authorization %q", i, a)
		}
	}
	reqs := f.requests()
	if len(reqs) < 2 || reqs[1] != "GET /v1/tasks/"+testID+"?wait=30s" {
		t.Errorf("requests %q, want a long poll after the submit", reqs)
	}
	wantOut := testID + "  echo  succeeded  attempt 1/3  12ms\nresult: {\"x\":1}\n"
	if out != wantOut {
		t.Errorf("stdout\n%s\nwant\n%s", out, wantOut)
	}
	if !strings.Contains(errOut, "submitted "+testID) {
		t.Errorf("stderr %q, want the task id", errOut)
	}
}

func TestSubmitWaitFailed(t *testing.T) {
	f := setupAPI(t)
	acceptSubmit(f)
	serveTask(f, failed())
	code, out, _ := runCLI(t, "submit", "--wait", "echo")
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	want := testID + "  echo  failed  attempt 3/3  12ms\nerror: boom\nstack trace\n"
	if out != want {
		t.Errorf("stdout\n%s\nwant\n%s", out, want)
	}
}

func TestSubmitArgsFromStdin(t *testing.T) {
	f := setupAPI(t)
	acceptSubmit(f)
	old := stdin
	stdin = strings.NewReader(`[1, 2, 3]` + "\n")
	t.Cleanup(func() { stdin = old })
	if code, _, errOut := runCLI(t, "submit", "sort", "-"); code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if want := `{"function":"sort","args":[1,2,3]}`; f.bodies()[0] != want {
		t.Errorf("request body %s, want %s", f.bodies()[0], want)
	}
}

func TestSubmitJSONIsTheAPIResponse(t *testing.T) {
	f := setupAPI(t)
	const resp = `{"id":"` + testID + `","state":"queued","a_field_from_a_newer_server":[1,2]}` + "\n"
	f.mux.HandleFunc("POST /v1/tasks", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 202, resp) })
	code, out, _ := runCLI(t, "submit", "echo", "--json")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	want := "{\n  \"id\": \"" + testID + "\",\n  \"state\": \"queued\",\n  \"a_field_from_a_newer_server\": [\n    1,\n    2\n  ]\n}\n"
	if out != want {
		t.Errorf("stdout\n%s\nwant\n%s", out, want)
	}
}

func TestSubmitUsageErrors(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"no function", []string{"submit"}, "missing arguments"},
		{"invalid JSON", []string{"submit", "echo", "hello"}, "args are not valid JSON: invalid character 'h' looking for beginning of value at byte 1"},
		{"too many arguments", []string{"submit", "echo", "1", "2"}, `unexpected argument "2"`},
		{"unknown flag", []string{"submit", "echo", "--nope"}, "flag provided but not defined: -nope"},
		{"bad duration", []string{"submit", "echo", "--timeout", "soon"}, `invalid value "soon" for flag -timeout`},
		{"bad max attempts", []string{"submit", "echo", "--max-attempts", "-1"}, "max_attempts: -1 is not between 1 and 100"},
		{"bad function name", []string{"submit", "no spaces"}, "is not a function name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := setupAPI(t)
			code, _, errOut := runCLI(t, tt.args...)
			if code != 2 {
				t.Errorf("exit %d, want 2", code)
			}
			if !strings.Contains(errOut, tt.wantErr) {
				t.Errorf("stderr %q, want it to contain %q", errOut, tt.wantErr)
			}
			if reqs := f.requests(); len(reqs) != 0 {
				t.Errorf("requests sent: %q", reqs)
			}
		})
	}
}

func TestDoubleDashEndsFlags(t *testing.T) {
	f := setupAPI(t)
	acceptSubmit(f)
	if code, _, errOut := runCLI(t, "submit", "--json", "echo", "--", "-1"); code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if want := `{"function":"echo","args":-1}`; f.bodies()[0] != want {
		t.Errorf("request body %s, want %s", f.bodies()[0], want)
	}
}

func TestHelp(t *testing.T) {
	setupAPI(t)
	code, _, errOut := runCLI(t, "submit", "-h")
	if code != 0 || !strings.Contains(errOut, "Usage: drover submit <function>") || !strings.Contains(errOut, "DROVER_API_KEY") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

func TestStatus(t *testing.T) {
	f := setupAPI(t)
	st := queued()
	st.State, st.Attempt, st.Runner, st.StartedAt = task.Running, 1, "runner-7", t1
	st.Queue = "big"
	serveTask(f, st)
	code, out, _ := runCLI(t, "status", testID)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	if !strings.HasPrefix(out, testID+"  echo  queue big  running  attempt 1/3  age ") || !strings.Contains(out, "\nrunner: runner-7\n") {
		t.Errorf("stdout %q", out)
	}
}

func TestStatusResultRef(t *testing.T) {
	f := setupAPI(t)
	st := succeeded()
	st.Result, st.ResultRef = nil, "results/"+testID+".json"
	serveTask(f, st)
	_, out, _ := runCLI(t, "status", testID)
	if !strings.Contains(out, "\nresult_ref: results/"+testID+".json\n") || strings.Contains(out, "result:") {
		t.Errorf("stdout %q", out)
	}
}

func TestAPIErrors(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		key     string
		handle  http.HandlerFunc
		wantErr string
	}{
		{"not found", []string{"status", "01JD"}, "",
			func(w http.ResponseWriter, r *http.Request) { writeProblem(w, 404, "no task 01JD") },
			"drover status: no task 01JD\n"},
		{"already terminal", []string{"cancel", "01JD"}, "",
			func(w http.ResponseWriter, r *http.Request) { writeProblem(w, 409, "task 01JD is already succeeded") },
			"drover cancel: task 01JD is already succeeded\n"},
		{"unauthorized without a key", []string{"ls"}, "",
			func(w http.ResponseWriter, r *http.Request) { writeProblem(w, 401, "missing bearer token") },
			"drover ls: missing bearer token (set DROVER_API_KEY)\n"},
		{"unauthorized with a key", []string{"runners"}, "wrong",
			func(w http.ResponseWriter, r *http.Request) { writeProblem(w, 401, "unknown API key") },
			"drover runners: unknown API key\n"},
		{"invalid spec", []string{"submit", "echo", "--wait"}, "",
			func(w http.ResponseWriter, r *http.Request) { writeProblem(w, 422, "function: no runner serves echo") },
			"drover submit: function: no runner serves echo\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := setupAPI(t)
			t.Setenv("DROVER_API_KEY", tt.key)
			f.mux.HandleFunc("/", tt.handle)
			code, out, errOut := runCLI(t, tt.args...)
			if code != 3 || errOut != tt.wantErr || out != "" {
				t.Errorf("exit %d, stdout %q, stderr %q; want 3 and %q", code, out, errOut, tt.wantErr)
			}
		})
	}
}

func TestUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	t.Setenv("DROVER_URL", srv.URL)
	code, _, errOut := runCLI(t, "status", "01JD")
	if code != 3 || !strings.HasPrefix(errOut, "drover status: GET /v1/tasks/01JD: ") || !strings.Contains(errOut, "(DROVER_URL is "+srv.URL+")") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

func TestBadURL(t *testing.T) {
	t.Setenv("DROVER_URL", "127.0.0.1:8080")
	code, _, errOut := runCLI(t, "runners")
	if code != 2 || !strings.Contains(errOut, "DROVER_URL") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

func TestWait(t *testing.T) {
	tests := []struct {
		name     string
		statuses []task.Status
		wantCode int
		wantOut  string
	}{
		{"succeeds", []task.Status{succeeded()}, 0, "succeeded"},
		{"fails", []task.Status{queued(), failed()}, 1, "error: boom"},
		{"cancelled", []task.Status{func() task.Status { s := queued(); s.State = task.Cancelled; s.FinishedAt = t1; return s }()}, 1, "cancelled  attempt 0/3  1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := setupAPI(t)
			serveTask(f, tt.statuses...)
			code, out, errOut := runCLI(t, "wait", testID)
			if code != tt.wantCode || !strings.Contains(out, tt.wantOut) {
				t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
			}
			for _, r := range f.requests() {
				if !strings.HasSuffix(r, "?wait=30s") {
					t.Errorf("request %q is not a long poll", r)
				}
			}
		})
	}
}

func TestWaitTimeout(t *testing.T) {
	f := setupAPI(t)
	running := queued()
	running.State, running.Attempt = task.Running, 1
	serveTask(f, running)
	code, out, errOut := runCLI(t, "wait", "--json", testID, "--timeout", "1s")
	if code != 4 {
		t.Errorf("exit %d, want 4", code)
	}
	if !strings.Contains(errOut, "task "+testID+" is still running after 1s") {
		t.Errorf("stderr %q", errOut)
	}
	var st task.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.State != task.Running {
		t.Errorf("stdout %q is not the last status: %v", out, err)
	}
}

// TestWaitInterrupted: an interrupt names the state last seen. The
// interrupt comes with the second poll (so the first one's answer has
// been read, however slow the machine), not at a guess of 50 ms.
func TestWaitInterrupted(t *testing.T) {
	f := setupAPI(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var polls atomic.Int32
	f.mux.HandleFunc("GET /v1/tasks/{id}", func(w http.ResponseWriter, r *http.Request) {
		if polls.Add(1) == 2 {
			cancel()
		}
		writeJSON(w, 200, queued())
	})
	var out, errOut bytes.Buffer
	code := run(ctx, []string{"wait", testID}, &out, &errOut)
	if code != 130 || !strings.Contains(errOut.String(), "interrupted; task "+testID+" is still queued") {
		t.Errorf("exit %d, stderr %q", code, errOut.String())
	}
}

func TestList(t *testing.T) {
	f := setupAPI(t)
	f.mux.HandleFunc("GET /v1/tasks", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{
			"tasks":       []task.Status{succeeded(), failed(), queued()},
			"next_cursor": "c2",
		})
	})
	code, out, errOut := runCLI(t, "ls", "--state", "failed", "--function", "echo", "--limit", "3", "--cursor", "c1")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if reqs := f.requests(); len(reqs) != 1 || reqs[0] != "GET /v1/tasks?cursor=c1&function=echo&limit=3&state=failed" {
		t.Errorf("requests %q", reqs)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("stdout has %d lines, want a header and 3 rows:\n%s", len(lines), out)
	}
	for i, want := range [][]string{
		{"ID", "FUNCTION", "STATE", "ATTEMPT", "AGE", "RUNNER/ERROR"},
		{testID, "echo", "succeeded", "1/3", "r1"},
		{testID, "echo", "failed", "3/3", "boom", "…"},
		{testID, "echo", "queued", "0/3", "-"},
	} {
		fields := strings.Fields(lines[i])
		if i > 0 { // drop AGE, which depends on the clock
			fields = append(fields[:4:4], fields[5:]...)
		}
		if fmt.Sprint(fields) != fmt.Sprint(want) {
			t.Errorf("line %d: %q, want fields %q", i, lines[i], want)
		}
	}
	if errOut != "more: drover ls --cursor c2\n" {
		t.Errorf("stderr %q", errOut)
	}
}

func TestListBadState(t *testing.T) {
	setupAPI(t)
	code, _, errOut := runCLI(t, "ls", "--state", "done")
	if code != 2 || !strings.Contains(errOut, `invalid value "done" for flag -state`) {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

func TestListJSON(t *testing.T) {
	f := setupAPI(t)
	f.mux.HandleFunc("GET /v1/tasks", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, `{"tasks":[],"next_cursor":""}`)
	})
	code, out, _ := runCLI(t, "ls", "--json")
	if code != 0 || out != "{\n  \"tasks\": [],\n  \"next_cursor\": \"\"\n}\n" {
		t.Errorf("exit %d, stdout %q", code, out)
	}
}

func TestCancel(t *testing.T) {
	f := setupAPI(t)
	f.mux.HandleFunc("DELETE /v1/tasks/{id}", func(w http.ResponseWriter, r *http.Request) {
		st := queued()
		st.State, st.FinishedAt = task.Cancelled, t1
		writeJSON(w, 200, st)
	})
	code, out, _ := runCLI(t, "cancel", testID)
	if code != 0 || !strings.HasPrefix(out, testID+"  echo  cancelled") {
		t.Errorf("exit %d, stdout %q", code, out)
	}
}

func TestRunners(t *testing.T) {
	f := setupAPI(t)
	now := time.Now()
	f.mux.HandleFunc("GET /v1/runners", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"runners": []task.RunnerInfo{
			{ID: "2", Name: "vm-b", Host: "10.0.0.2", Functions: []string{"echo", "sleep"}, Concurrency: 8, Active: 2, SeenAt: now.Add(-3 * time.Second),
				Queues: []string{"gpu", "default"}, Traits: task.Traits{"gpu": "", "python": "3.11"}},
			{ID: "1", Name: "vm-a", Functions: []string{"exec"}, Concurrency: 4, SeenAt: now.Add(-90 * time.Second)},
		}})
	})
	code, out, _ := runCLI(t, "runners")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	for i, want := range []string{
		"NAME HOST QUEUES FUNCTIONS TRAITS ACTIVE/CONCURRENCY SEEN",
		"vm-a - - exec - 0/4 1m ago",
		"vm-b 10.0.0.2 gpu,default echo,sleep gpu,python=3.11 2/8 3s ago",
	} {
		if i >= len(lines) || strings.Join(strings.Fields(lines[i]), " ") != want {
			t.Errorf("stdout:\n%s\nline %d, want %q", out, i, want)
		}
	}
}

func TestRunnersNone(t *testing.T) {
	f := setupAPI(t)
	f.mux.HandleFunc("GET /v1/runners", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, `{"runners":[]}`)
	})
	if code, out, _ := runCLI(t, "runners"); code != 0 || out != "no runners seen recently\n" {
		t.Errorf("exit %d, stdout %q", code, out)
	}
}

func TestRoundDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		12*time.Millisecond + 345*time.Microsecond: "12ms",
		1540 * time.Millisecond:                    "1.5s",
		123*time.Second + 400*time.Millisecond:     "2m3s",
		0:                                          "0s",
	} {
		if got := roundDuration(d); got != want {
			t.Errorf("roundDuration(%s) = %q, want %q", d, got, want)
		}
	}
}
