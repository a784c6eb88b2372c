// Package lambdatest runs a Lambda function binary in tests, against a
// stand-in for the Lambda Runtime API on a loopback port: the binary takes
// the given events one by one from /runtime/invocation/next as it would
// inside Lambda, and Run returns what it answered to each.
//
// Only the parts of the Runtime API that a Go function built on
// aws-lambda-go uses are there: next, response, error and init/error (no
// extensions, no response streaming, no telemetry).
package lambdatest

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Values the stand-in gives every invocation.
const (
	FunctionName = "drover-test"
	FunctionARN  = "arn:aws:lambda:us-east-1:123456789012:function:" + FunctionName
	// InvokeTimeout is each invocation's deadline, from when it is served.
	InvokeTimeout = 30 * time.Second
	// RunTimeout bounds a whole Run.
	RunTimeout = 2 * time.Minute
)

// ErrorTypeExit is the ErrorType of an event left unanswered because the
// function's process exited (Lambda's Runtime.ExitError).
const ErrorTypeExit = "Runtime.ExitError"

// Response is a function's answer to one event.
type Response struct {
	// RequestID is the Lambda-Runtime-Aws-Request-Id the event was served
	// with ("" if it never was).
	RequestID string
	// Payload is the function's response document, when it succeeded.
	Payload []byte
	// ErrorType is set when the invocation failed: the
	// Lambda-Runtime-Function-Error-Type the function reported, or
	// ErrorTypeExit.
	ErrorType string
	// ErrorPayload is the error document the function posted
	// ({"errorMessage": ..., "errorType": ...}), or for ErrorTypeExit the
	// end of the process's output.
	ErrorPayload []byte
	// InitError reports that the function posted to /runtime/init/error
	// before taking this event.
	InitError bool
}

// Failed reports whether the invocation failed.
func (r Response) Failed() bool { return r.ErrorType != "" }

// Build compiles the main package pkg (an import path or a ./ directory,
// resolved from the current directory) into a binary in t.TempDir and
// returns its path.
func Build(t testing.TB, pkg string) string {
	t.Helper()
	bin := t.TempDir() + "/bootstrap"
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// Run starts binary with AWS_LAMBDA_RUNTIME_API pointing at a stand-in
// Runtime API, and the Lambda variables (AWS_LAMBDA_FUNCTION_NAME and
// the like) then env (KEY=VALUE; later values win) added to this
// process's environment. It serves the events in order, one invocation at
// a time, and returns one Response per event, in the same order, once all
// are answered or the process has exited; then it kills the process. The
// process's output goes to the test log.
func Run(t testing.TB, binary string, env []string, events ...[]byte) []Response {
	t.Helper()
	rt := newRuntime(events)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("lambdatest: listen: %v", err)
	}
	srv := &http.Server{Handler: rt.mux(), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(l)
	defer srv.Close()

	var out bytes.Buffer
	cmd := exec.Command(binary)
	cmd.Env = append(os.Environ(),
		"AWS_LAMBDA_FUNCTION_NAME="+FunctionName,
		"AWS_LAMBDA_FUNCTION_VERSION=$LATEST",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128",
		"AWS_LAMBDA_LOG_GROUP_NAME=/aws/lambda/"+FunctionName,
		"AWS_LAMBDA_LOG_STREAM_NAME=lambdatest",
	)
	cmd.Env = append(cmd.Env, env...)
	cmd.Env = append(cmd.Env, "AWS_LAMBDA_RUNTIME_API="+l.Addr().String())
	cmd.Stdout = &syncWriter{w: &out, mu: &rt.mu}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatalf("lambdatest: start %s: %v", binary, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	defer func() {
		_ = cmd.Process.Kill()
		<-exited
		rt.mu.Lock()
		defer rt.mu.Unlock()
		if out.Len() > 0 {
			t.Logf("lambdatest: output of %s:\n%s", binary, out.String())
		}
	}()

	select {
	case <-rt.done:
	case <-exited:
		// Let answers already posted land before judging what is missing.
		select {
		case <-rt.done:
		case <-time.After(100 * time.Millisecond):
		}
	case <-time.After(RunTimeout):
		t.Fatalf("lambdatest: %s answered %d of %d events within %s", binary, rt.answered(), len(events), RunTimeout)
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	tail := out.Bytes()
	if len(tail) > 2048 {
		tail = tail[len(tail)-2048:]
	}
	resps := make([]Response, len(events))
	for i := range resps {
		if rt.resps[i] != nil {
			resps[i] = *rt.resps[i]
			continue
		}
		resps[i] = Response{
			RequestID:    rt.ids[i],
			ErrorType:    ErrorTypeExit,
			ErrorPayload: bytes.Clone(tail),
			InitError:    rt.initErr != nil,
		}
		if rt.initErr != nil {
			resps[i].ErrorType, resps[i].ErrorPayload = rt.initErr.ErrorType, rt.initErr.ErrorPayload
		}
	}
	return resps
}

// runtime is the stand-in Runtime API's state.
type runtime struct {
	events [][]byte
	next   chan int // indexes of events not yet served
	done   chan struct{}

	mu      sync.Mutex
	ids     []string       // request ID by event index
	byID    map[string]int // event index by request ID
	resps   []*Response    // answers by event index
	initErr *Response      // what /runtime/init/error got
	n       int            // answers so far
	closed  bool
}

func newRuntime(events [][]byte) *runtime {
	rt := &runtime{
		events: events,
		next:   make(chan int, len(events)),
		done:   make(chan struct{}),
		ids:    make([]string, len(events)),
		byID:   map[string]int{},
		resps:  make([]*Response, len(events)),
	}
	for i := range events {
		rt.next <- i
	}
	if len(events) == 0 {
		rt.finish()
	}
	return rt
}

func (rt *runtime) answered() int {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.n
}

// finish marks the run over; call with rt.mu held or before sharing rt.
func (rt *runtime) finish() {
	if !rt.closed {
		rt.closed = true
		close(rt.done)
	}
}

const apiPrefix = "/2018-06-01/runtime/"

func (rt *runtime) mux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+apiPrefix+"invocation/next", rt.serveNext)
	mux.HandleFunc("POST "+apiPrefix+"invocation/{id}/response", rt.serveAnswer)
	mux.HandleFunc("POST "+apiPrefix+"invocation/{id}/error", rt.serveAnswer)
	mux.HandleFunc("POST "+apiPrefix+"init/error", rt.serveInitError)
	return mux
}

func (rt *runtime) serveNext(w http.ResponseWriter, r *http.Request) {
	var i int
	select {
	case i = <-rt.next:
	case <-r.Context().Done():
		return // the process went away, or the run is over
	}
	id := fmt.Sprintf("lambdatest-%d-%d", i+1, time.Now().UnixNano())
	rt.mu.Lock()
	rt.ids[i], rt.byID[id] = id, i
	rt.mu.Unlock()
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Lambda-Runtime-Aws-Request-Id", id)
	h.Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(time.Now().Add(InvokeTimeout).UnixMilli(), 10))
	h.Set("Lambda-Runtime-Invoked-Function-Arn", FunctionARN)
	h.Set("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000;Parent=0000000000000000;Sampled=0")
	w.WriteHeader(http.StatusOK)
	w.Write(rt.events[i])
}

func (rt *runtime) serveAnswer(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	resp := &Response{RequestID: r.PathValue("id")}
	if strings.HasSuffix(r.URL.Path, "/error") {
		resp.ErrorType = r.Header.Get("Lambda-Runtime-Function-Error-Type")
		if resp.ErrorType == "" {
			resp.ErrorType = "Unhandled"
		}
		resp.ErrorPayload = body
	} else if et := r.Trailer.Get("Lambda-Runtime-Function-Error-Type"); et != "" {
		// A response that failed while it was being sent.
		resp.ErrorType, resp.ErrorPayload = et, []byte(r.Trailer.Get("Lambda-Runtime-Function-Error-Body"))
	} else {
		resp.Payload = body
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	i, ok := rt.byID[resp.RequestID]
	if !ok || rt.resps[i] != nil {
		http.Error(w, "unknown or answered request ID "+resp.RequestID, http.StatusBadRequest)
		return
	}
	rt.resps[i] = resp
	rt.n++
	w.WriteHeader(http.StatusAccepted)
	if rt.n == len(rt.events) {
		rt.finish()
	}
}

func (rt *runtime) serveInitError(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	et := r.Header.Get("Lambda-Runtime-Function-Error-Type")
	if et == "" {
		et = "Runtime.InitError"
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.initErr = &Response{ErrorType: et, ErrorPayload: body, InitError: true}
	w.WriteHeader(http.StatusAccepted)
	rt.finish()
}

// syncWriter serializes the process's output with the reads of it.
type syncWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
