package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/droverhq/drover/pkg/task"
)

// setup starts a fake dispatcher serving h and returns a client for it with
// a backoff short enough for tests.
func setup(t *testing.T, h http.HandlerFunc, opts ...Option) *Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c := New(srv.URL+"/", opts...)
	c.backoff = time.Millisecond
	return c
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func writeProblem(w http.ResponseWriter, code int, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(code)
	fmt.Fprintf(w, `{"type":"about:blank","title":%q,"status":%d,"detail":%q}`, http.StatusText(code), code, detail)
}

// recorded is what a fake server saw of one request.
type recorded struct {
	method, path, rawQuery, auth, contentType string
	body                                      string
}

func record(r *http.Request) recorded {
	b, _ := io.ReadAll(r.Body)
	return recorded{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, r.Header.Get("Authorization"), r.Header.Get("Content-Type"), string(b)}
}

func TestRequestShapes(t *testing.T) {
	st := task.Status{ID: "01JD3V8ZQ6B1Y4T0KX9M2N5P7R", Function: "echo", State: task.Queued}
	tests := []struct {
		name string
		call func(context.Context, *Client) error
		resp any
		want recorded
	}{
		{
			name: "submit",
			call: func(ctx context.Context, c *Client) error {
				_, err := c.Submit(ctx, task.Spec{Function: "echo", Args: json.RawMessage(`{"x":1}`),
					Timeout: task.Duration(30 * time.Second), MaxAttempts: 2, IdempotencyKey: "k1"})
				return err
			},
			resp: st,
			want: recorded{method: "POST", path: "/v1/tasks", auth: "Bearer sekrit", contentType: "application/json",
				body: `{"function":"echo","args":{"x":1},"timeout":"30s","max_attempts":2,"idempotency_key":"k1"}`},
		},
		{
			name: "batch",
			call: func(ctx context.Context, c *Client) error {
				sts, err := c.SubmitBatch(ctx, []task.Spec{{Function: "echo"}, {Function: "sleep", Delay: task.Duration(time.Second)}})
				if err == nil && len(sts) != 2 {
					err = fmt.Errorf("got %d statuses", len(sts))
				}
				return err
			},
			resp: map[string]any{"tasks": []task.Status{st, st}},
			want: recorded{method: "POST", path: "/v1/tasks/batch", auth: "Bearer sekrit", contentType: "application/json",
				body: `{"tasks":[{"function":"echo"},{"function":"sleep","delay":"1s"}]}`},
		},
		{
			name: "get escapes the id",
			call: func(ctx context.Context, c *Client) error { _, err := c.Get(ctx, "a/b c"); return err },
			resp: st,
			want: recorded{method: "GET", path: "/v1/tasks/a%2Fb%20c", auth: "Bearer sekrit"},
		},
		{
			name: "list",
			call: func(ctx context.Context, c *Client) error {
				_, err := c.List(ctx, ListOptions{State: task.Failed, Function: "echo", Limit: 5, Cursor: "c/1"})
				return err
			},
			resp: Page{Tasks: []*task.Status{&st}},
			want: recorded{method: "GET", path: "/v1/tasks", rawQuery: "cursor=c%2F1&function=echo&limit=5&state=failed", auth: "Bearer sekrit"},
		},
		{
			name: "list without filters",
			call: func(ctx context.Context, c *Client) error { _, err := c.List(ctx, ListOptions{}); return err },
			resp: Page{},
			want: recorded{method: "GET", path: "/v1/tasks", auth: "Bearer sekrit"},
		},
		{
			name: "cancel",
			call: func(ctx context.Context, c *Client) error { _, err := c.Cancel(ctx, "01JD"); return err },
			resp: st,
			want: recorded{method: "DELETE", path: "/v1/tasks/01JD", auth: "Bearer sekrit"},
		},
		{
			name: "runners",
			call: func(ctx context.Context, c *Client) error {
				rs, err := c.Runners(ctx)
				if err == nil && (len(rs) != 1 || rs[0].Name != "r1") {
					err = fmt.Errorf("got runners %+v", rs)
				}
				return err
			},
			resp: map[string]any{"runners": []task.RunnerInfo{{ID: "1", Name: "r1", Functions: []string{"echo"}}}},
			want: recorded{method: "GET", path: "/v1/runners", auth: "Bearer sekrit"},
		},
		{
			name: "ready",
			call: func(ctx context.Context, c *Client) error { return c.Ready(ctx) },
			resp: map[string]string{"status": "ok"},
			want: recorded{method: "GET", path: "/readyz", auth: "Bearer sekrit"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []recorded
			c := setup(t, func(w http.ResponseWriter, r *http.Request) {
				got = append(got, record(r))
				writeJSON(w, http.StatusOK, tt.resp)
			}, WithAPIKey("sekrit"))
			if err := tt.call(t.Context(), c); err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0] != tt.want {
				t.Errorf("requests:\n got %+v\nwant [%+v]", got, tt.want)
			}
		})
	}
}

func TestNoAPIKeyNoAuthorization(t *testing.T) {
	c := setup(t, func(w http.ResponseWriter, r *http.Request) {
		if _, ok := r.Header["Authorization"]; ok {
			t.Error("Authorization sent without an API key")
		}
		writeJSON(w, http.StatusOK, task.Status{ID: "x"})
	})
	if _, err := c.Get(t.Context(), "x"); err != nil {
		t.Fatal(err)
	}
}

func TestErrorDecoding(t *testing.T) {
	tests := []struct {
		name     string
		handler  http.HandlerFunc
		want     Error
		notFound bool
		conflict bool
	}{
		{
			name:     "problem 404",
			handler:  func(w http.ResponseWriter, r *http.Request) { writeProblem(w, 404, "no task 01JD") },
			want:     Error{Status: 404, Title: "Not Found", Detail: "no task 01JD", Type: "about:blank"},
			notFound: true,
		},
		{
			name:     "problem 409",
			handler:  func(w http.ResponseWriter, r *http.Request) { writeProblem(w, 409, "task 01JD is already succeeded") },
			want:     Error{Status: 409, Title: "Conflict", Detail: "task 01JD is already succeeded", Type: "about:blank"},
			conflict: true,
		},
		{
			name: "problem with a custom title",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/problem+json")
				w.WriteHeader(422)
				io.WriteString(w, `{"type":"https://drover.dev/problems/invalid-spec","title":"Invalid task spec","status":422,"detail":"timeout: is too long"}`)
			},
			want: Error{Status: 422, Title: "Invalid task spec", Detail: "timeout: is too long", Type: "https://drover.dev/problems/invalid-spec"},
		},
		{
			name: "plain text from a proxy",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusRequestEntityTooLarge)
				io.WriteString(w, "\n  body too large  \n<html>…</html>")
			},
			want: Error{Status: 413, Title: "Request Entity Too Large", Detail: "body too large"},
		},
		{
			name:    "empty body",
			handler: func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusUnauthorized) },
			want:    Error{Status: 401, Title: "Unauthorized"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := setup(t, tt.handler)
			_, err := c.Submit(t.Context(), task.Spec{Function: "echo"})
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v (%T), want *Error", err, err)
			}
			if *e != tt.want {
				t.Errorf("got %+v, want %+v", *e, tt.want)
			}
			if IsNotFound(err) != tt.notFound || IsConflict(err) != tt.conflict {
				t.Errorf("IsNotFound %v, IsConflict %v", IsNotFound(err), IsConflict(err))
			}
		})
	}
}

func TestErrorString(t *testing.T) {
	for _, tt := range []struct {
		e    Error
		want string
	}{
		{Error{Status: 404, Title: "Not Found", Detail: "no task x"}, "404 Not Found: no task x"},
		{Error{Status: 503, Title: "Service Unavailable"}, "503 Service Unavailable"},
	} {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
}

func TestTransportErrorNamesMethodAndPath(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there now
	c := New(url)
	c.backoff = time.Millisecond
	_, err := c.Get(t.Context(), "01JD")
	if err == nil || !strings.HasPrefix(err.Error(), "GET /v1/tasks/01JD: ") {
		t.Fatalf("error %v, want it to start with the method and path", err)
	}
	var e *Error
	if errors.As(err, &e) {
		t.Errorf("transport error decoded as *Error: %v", e)
	}
}

func TestContextErrorUnwrapped(t *testing.T) {
	c := setup(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if _, err := c.Get(ctx, "x"); err != context.DeadlineExceeded {
		t.Fatalf("error %v, want context.DeadlineExceeded itself", err)
	}
}

// flaky answers the first n requests with fail, the rest with a status.
func flaky(n int, fail http.HandlerFunc) (http.HandlerFunc, *atomic.Int32) {
	var calls atomic.Int32
	return func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= int32(n) {
			fail(w, r)
			return
		}
		writeJSON(w, http.StatusAccepted, task.Status{ID: "01JD", State: task.Queued})
	}, &calls
}

func unavailable(w http.ResponseWriter, r *http.Request) { writeProblem(w, 503, "store unreachable") }

// hangUp closes the connection without answering.
func hangUp(w http.ResponseWriter, r *http.Request) { panic(http.ErrAbortHandler) }

func TestRetries(t *testing.T) {
	get := func(ctx context.Context, c *Client) error { _, err := c.Get(ctx, "01JD"); return err }
	submit := func(key string) func(context.Context, *Client) error {
		return func(ctx context.Context, c *Client) error {
			_, err := c.Submit(ctx, task.Spec{Function: "echo", IdempotencyKey: key})
			return err
		}
	}
	tests := []struct {
		name      string
		failures  int
		fail      http.HandlerFunc
		call      func(context.Context, *Client) error
		wantCalls int32 // 0: at least failures+1
		wantErr   bool
	}{
		{name: "get retries 503", failures: 2, fail: unavailable, call: get, wantCalls: 3},
		{name: "get gives up after a few tries", failures: 10, fail: unavailable, call: get, wantCalls: defaultTries, wantErr: true},
		{name: "get retries a hang-up", failures: 2, fail: hangUp, call: get},
		{name: "get does not retry 404", failures: 1, fail: func(w http.ResponseWriter, r *http.Request) { writeProblem(w, 404, "no") }, call: get, wantCalls: 1, wantErr: true},
		{name: "submit without key not retried on 503", failures: 1, fail: unavailable, call: submit(""), wantCalls: 1, wantErr: true},
		{name: "submit without key not retried on hang-up", failures: 1, fail: hangUp, call: submit(""), wantCalls: 1, wantErr: true},
		{name: "submit with key retried on 503", failures: 2, fail: unavailable, call: submit("k"), wantCalls: 3},
		{name: "cancel not retried", failures: 1, fail: unavailable, wantCalls: 1, wantErr: true,
			call: func(ctx context.Context, c *Client) error { _, err := c.Cancel(ctx, "01JD"); return err }},
		{name: "ready not retried", failures: 1, fail: unavailable, wantCalls: 1, wantErr: true,
			call: func(ctx context.Context, c *Client) error { return c.Ready(ctx) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, calls := flaky(tt.failures, tt.fail)
			c := setup(t, h)
			err := tt.call(t.Context(), c)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error %v, want error %v", err, tt.wantErr)
			}
			n := calls.Load()
			if tt.wantCalls != 0 && n != tt.wantCalls || tt.wantCalls == 0 && n < int32(tt.failures)+1 {
				t.Errorf("server saw %d requests, want %d", n, tt.wantCalls)
			}
		})
	}
}

func TestRetryStopsWhenContextEnds(t *testing.T) {
	c := setup(t, unavailable)
	c.backoff = maxBackoff // far beyond the deadline
	c.tries = 2
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if _, err := c.Get(ctx, "x"); err != context.DeadlineExceeded {
		t.Fatalf("error %v, want context.DeadlineExceeded", err)
	}
}

func TestWaitLongPolls(t *testing.T) {
	var (
		mu    sync.Mutex
		waits []string
	)
	states := []task.State{task.Queued, task.Running, task.Retrying, task.Failed}
	c := setup(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.URL.Path != "/v1/tasks/01JD" {
			writeProblem(w, 404, "wrong path "+r.URL.Path)
			return
		}
		waits = append(waits, r.URL.Query().Get("wait"))
		writeJSON(w, http.StatusOK, task.Status{ID: "01JD", State: states[len(waits)-1], Error: "boom"})
	})
	st, err := c.Wait(t.Context(), "01JD", WaitOptions{MinInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if st.State != task.Failed || st.Error != "boom" {
		t.Errorf("got %+v, want the failed status", st)
	}
	if want := []string{"30s", "30s", "30s", "30s"}; fmt.Sprint(waits) != fmt.Sprint(want) {
		t.Errorf("wait parameters %q, want %q", waits, want)
	}
}

func TestWaitRetriesTransientErrors(t *testing.T) {
	var calls atomic.Int32
	c := setup(t, func(w http.ResponseWriter, r *http.Request) {
		switch calls.Add(1) {
		case 1:
			writeJSON(w, 200, task.Status{ID: "01JD", State: task.Running})
		case 2, 3:
			unavailable(w, r)
		default:
			writeJSON(w, 200, task.Status{ID: "01JD", State: task.Succeeded})
		}
	})
	st, err := c.Wait(t.Context(), "01JD", WaitOptions{MinInterval: time.Millisecond})
	if err != nil || st.State != task.Succeeded {
		t.Fatalf("got %v, %v; want succeeded", st, err)
	}
}

func TestWaitUntilDeadline(t *testing.T) {
	var mu sync.Mutex
	var waits []string
	c := setup(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		waits = append(waits, r.URL.Query().Get("wait"))
		mu.Unlock()
		writeJSON(w, 200, task.Status{ID: "01JD", State: task.Running})
	})
	// 3.5 s: the first poll asks for 3 s, or for 2 s or 1 s if it is
	// sent up to 2.5 s late on a loaded machine (1.5 s left no slack
	// beyond half a second).
	ctx, cancel := context.WithTimeout(t.Context(), 3500*time.Millisecond)
	defer cancel()
	st, err := c.Wait(ctx, "01JD", WaitOptions{MinInterval: 200 * time.Millisecond})
	if err != context.DeadlineExceeded {
		t.Fatalf("error %v, want context.DeadlineExceeded", err)
	}
	if st == nil || st.State != task.Running {
		t.Errorf("last status %+v, want the running one", st)
	}
	mu.Lock()
	defer mu.Unlock()
	// The first poll asks the server to hold no longer than the deadline
	// allows; the last ones, under a second before it, ask for no wait.
	if len(waits) < 2 || !slices.Contains([]string{"1s", "2s", "3s"}, waits[0]) || waits[len(waits)-1] != "" {
		t.Errorf("wait parameters %q, want whole seconds within the deadline first and none last", waits)
	}
}

func TestWaitShortensPollToHTTPTimeout(t *testing.T) {
	c := New("http://unused", WithHTTPClient(&http.Client{Timeout: 10 * time.Second}))
	if got := c.pollWait(t.Context(), 30*time.Second); got != 9*time.Second {
		t.Errorf("pollWait = %s, want 9s", got)
	}
}

func TestCancelEmptyBodyReadsStatus(t *testing.T) {
	c := setup(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodDelete {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		writeJSON(w, 200, task.Status{ID: "01JD", State: task.Cancelled})
	})
	st, err := c.Cancel(t.Context(), "01JD")
	if err != nil || st.State != task.Cancelled {
		t.Fatalf("got %+v, %v", st, err)
	}
}

func TestResultFollowsRedirect(t *testing.T) {
	blob := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("sig") != "abc" {
			http.Error(w, "bad signature", http.StatusForbidden)
			return
		}
		w.Header().Set("Content-Type", "application/gzip")
		io.WriteString(w, "archive bytes")
	}))
	defer blob.Close()
	c := setup(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/tasks/01JD/result" {
			writeProblem(w, 404, "wrong path")
			return
		}
		http.Redirect(w, r, blob.URL+"/results/01JD?sig=abc", http.StatusFound)
	})
	body, ct, err := c.Result(t.Context(), "01JD")
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	b, _ := io.ReadAll(body)
	if string(b) != "archive bytes" || ct != "application/gzip" {
		t.Errorf("got %q (%s)", b, ct)
	}
}

func TestResultNotReady(t *testing.T) {
	c := setup(t, func(w http.ResponseWriter, r *http.Request) { writeProblem(w, 409, "task 01JD is running") })
	if _, _, err := c.Result(t.Context(), "01JD"); !IsConflict(err) {
		t.Fatalf("error %v, want a conflict", err)
	}
}

func TestReadyNotReady(t *testing.T) {
	c := setup(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(503)
		io.WriteString(w, "queue: dial tcp: connection refused\n")
	})
	err := c.Ready(t.Context())
	var e *Error
	if !errors.As(err, &e) || e.Status != 503 || e.Detail != "queue: dial tcp: connection refused" {
		t.Fatalf("error %#v", err)
	}
}

func TestListAllPages(t *testing.T) {
	pages := map[string]Page{
		"":   {Tasks: []*task.Status{{ID: "3"}, {ID: "2"}}, NextCursor: "c1"},
		"c1": {Tasks: []*task.Status{{ID: "1"}}},
	}
	c := setup(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("limit") != "2" {
			t.Errorf("limit = %q", r.URL.Query().Get("limit"))
		}
		writeJSON(w, 200, pages[r.URL.Query().Get("cursor")])
	})
	var ids []string
	for st, err := range c.ListAll(t.Context(), ListOptions{Limit: 2}) {
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, st.ID)
	}
	if strings.Join(ids, ",") != "3,2,1" {
		t.Errorf("ids %v", ids)
	}
}

func TestListAllRepeatedCursor(t *testing.T) {
	c := setup(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, Page{Tasks: []*task.Status{{ID: "1"}}, NextCursor: "same"})
	})
	var n int
	var last error
	for _, err := range c.ListAll(t.Context(), ListOptions{}) {
		n++
		last = err
	}
	if last == nil || n != 3 {
		t.Errorf("got %d items, last error %v; want 2 tasks then an error", n, last)
	}
}

func TestSubmitBatchCountMismatch(t *testing.T) {
	c := setup(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 202, map[string]any{"tasks": []task.Status{{ID: "1"}}})
	})
	if _, err := c.SubmitBatch(t.Context(), []task.Spec{{Function: "a"}, {Function: "b"}}); err == nil {
		t.Fatal("no error for a short batch response")
	}
}

func TestEmptyID(t *testing.T) {
	c := New("http://unused")
	if _, err := c.Get(t.Context(), ""); err == nil {
		t.Error("Get with empty id: no error")
	}
	if _, err := c.Cancel(t.Context(), ""); err == nil {
		t.Error("Cancel with empty id: no error")
	}
}

// TestDecodeMatchesJSON: decode, which reads status documents with task's
// decoder, gives what json.Unmarshal gives, errors included.
func TestDecodeMatchesJSON(t *testing.T) {
	for _, body := range []string{
		`{"id":"01JD3V8ZQ6B1Y4T0KX9M2N5P7R","function":"echo","queue":"default","state":"queued","attempt":0,"max_attempts":3,"created_at":"2026-01-02T03:04:05.123456789Z"}` + "\n",
		`{"id":"a","result":null,"error":"\u003c\u0026\u003e"}`,
		`{"ID":"a"}`, // matches only case-insensitively: encoding/json's
		`{"tasks":[{"id":"a","result":{"n":1}},null,{"id":"b"}],"next_cursor":"c"}`,
		`{"tasks":[]}`,
		`{"tasks":null}`,
		`{"tasks":[{"id":"a"}],"tasks":[{"attempt":2}]}`,
		`{"tasks":[{"created_at":"yesterday"}]}`,
		`{"id":`,
		`null`,
	} {
		var st, wantSt task.Status
		sameDecode(t, body, decode([]byte(body), &st), json.Unmarshal([]byte(body), &wantSt), st, wantSt)
		var l, wantL statusList
		sameDecode(t, body, decode([]byte(body), &l), json.Unmarshal([]byte(body), &wantL), l, wantL)
	}
}

func sameDecode(t *testing.T, body string, err, wantErr error, got, want any) {
	t.Helper()
	if fmt.Sprint(err) != fmt.Sprint(wantErr) || !reflect.DeepEqual(got, want) {
		t.Errorf("%s: %+v, %v; json.Unmarshal gives %+v, %v", body, got, err, want, wantErr)
	}
}
