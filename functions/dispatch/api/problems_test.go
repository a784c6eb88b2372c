package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"gocloud.dev/blob"

	"github.com/droverhq/drover/pkg/memq"
	"github.com/droverhq/drover/pkg/task"
)

// httpBundle is the real Server over a fresh memq queue, memory bucket
// and store, behind an httptest server.
type httpBundle struct {
	url    string
	queue  string // memq queue name
	topic  *task.Topic
	store  *task.Store
	bucket *blob.Bucket
}

func setupHTTP(t *testing.T, cfg Config) *httpBundle {
	t.Helper()
	ctx := context.Background()
	q := fmt.Sprintf("problems-%d", fuzzSeq.Add(1))
	tp, err := task.OpenTopic(ctx, "memq://"+q)
	if err != nil {
		t.Fatal(err)
	}
	b, err := blob.OpenBucket(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	st, err := task.OpenStore(ctx, "mem://"+q+"/id")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New(tp, task.NewArchive(b), st, nil, cfg))
	t.Cleanup(func() {
		srv.Close()
		_ = tp.Shutdown(ctx)
		_ = b.Close()
		_ = st.Close()
		memq.Delete(q)
	})
	return &httpBundle{url: srv.URL, queue: q, topic: tp, store: st, bucket: b}
}

// do sends a request and returns the status and the body.
func (b *httpBundle) do(t *testing.T, method, path, contentType, body string, hdr map[string]string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, b.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, raw
}

// submit posts one echo task and returns its ID.
func (b *httpBundle) submit(t *testing.T) string {
	t.Helper()
	code, _, raw := b.do(t, "POST", "/v1/tasks", "application/json", `{"function":"echo","args":1}`, nil)
	var st task.Status
	if code != http.StatusAccepted || json.Unmarshal(raw, &st) != nil || st.ID == "" {
		t.Fatalf("submit: %d %s", code, raw)
	}
	return st.ID
}

// finish records task id's success, as the collector would: with an
// inline result, or with resultRef pointing into the archive.
func (b *httpBundle) finish(t *testing.T, id string, result, resultRef string) {
	t.Helper()
	now := time.Now().UTC()
	ev := &task.Event{TaskID: id, Function: "echo", Queue: "default", MaxAttempts: 3, CreatedAt: now,
		Attempt: 1, Phase: task.PhaseSucceeded, Runner: "r", At: now, StartedAt: now, ResultRef: resultRef}
	if result != "" {
		ev.Result = json.RawMessage(result)
	}
	if _, err := b.store.Apply(context.Background(), []*task.Event{ev}); err != nil {
		t.Fatal(err)
	}
}

// wantProblem fails unless raw is a problem document of status and
// type urn:drover:problem:kind.
func wantProblem(t *testing.T, code int, hdr http.Header, raw []byte, status int, kind string) {
	t.Helper()
	var p Problem
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatalf("%d %s: not a problem document: %v", code, raw, err)
	}
	if code != status || p.Status != status || p.Type != "urn:drover:problem:"+kind ||
		hdr.Get("Content-Type") != "application/problem+json" || p.Title == "" || p.Detail == "" {
		t.Fatalf("got %d %s (%s); want %d, type urn:drover:problem:%s, a title and a detail", code, raw, hdr.Get("Content-Type"), status, kind)
	}
}

// TestProblems: every documented error status answers a problem document
// whose type is the URN of its kind: unknown tasks and endpoints (404),
// /result of an unfinished task (409) or of one whose result left the
// archive (404), cancelling a finished task (409), each bad query
// parameter (400, naming it), bad bodies (400, 413, 415, 422), a wrong
// method (405) and a missing key (401).
func TestProblems(t *testing.T) {
	b := setupHTTP(t, Config{MaxBody: 1 << 10})
	keyed := setupHTTP(t, Config{APIKeys: []string{"key-0123456789abcdef"}})
	queued := b.submit(t)
	done := b.submit(t)
	b.finish(t, done, `"ok"`, "")
	gone := b.submit(t)
	b.finish(t, gone, "", task.ResultKey(gone, 1)) // never archived
	cancelled := b.submit(t)
	if code, _, raw := b.do(t, "DELETE", "/v1/tasks/"+cancelled, "", "", nil); code != http.StatusOK {
		t.Fatalf("cancel: %d %s", code, raw)
	}
	unknown := task.NewID(time.Now())
	cases := []struct {
		name, method, path, ctype, body string
		status                          int
		kind                            string
		detail                          string // a word the detail must hold; "" for any
	}{
		{"status of an unknown task", "GET", "/v1/tasks/" + unknown, "", "", 404, "not-found", ""},
		{"not a task ID", "GET", "/v1/tasks/nope", "", "", 404, "not-found", "nope"},
		{"result of an unknown task", "GET", "/v1/tasks/" + unknown + "/result", "", "", 404, "not-found", ""},
		{"result of a queued task", "GET", "/v1/tasks/" + queued + "/result", "", "", 409, "conflict", "queued"},
		{"result of a cancelled task", "GET", "/v1/tasks/" + cancelled + "/result", "", "", 409, "conflict", "cancelled"},
		{"result gone from the archive", "GET", "/v1/tasks/" + gone + "/result", "", "", 404, "not-found", "archive"},
		{"cancel a finished task", "DELETE", "/v1/tasks/" + done, "", "", 409, "conflict", "succeeded"},
		{"cancel an unknown task", "DELETE", "/v1/tasks/" + unknown, "", "", 404, "not-found", ""},
		{"unknown query parameter", "GET", "/v1/tasks?colour=red", "", "", 400, "malformed-request", "colour"},
		{"bad state", "GET", "/v1/tasks?state=done", "", "", 400, "malformed-request", "state"},
		{"limit zero", "GET", "/v1/tasks?limit=0", "", "", 400, "malformed-request", "limit"},
		{"limit too big", "GET", "/v1/tasks?limit=1001", "", "", 400, "malformed-request", "limit"},
		{"limit not a number", "GET", "/v1/tasks?limit=ten", "", "", 400, "malformed-request", "limit"},
		{"forged cursor", "GET", "/v1/tasks?cursor=AAAA", "", "", 400, "malformed-request", "cursor"},
		{"bad wait", "GET", "/v1/tasks/" + queued + "?wait=soon", "", "", 400, "malformed-request", "wait"},
		{"unknown field", "POST", "/v1/tasks", "application/json", `{"function":"echo","colour":1}`, 400, "malformed-request", "colour"},
		{"no function", "POST", "/v1/tasks", "application/json", `{"args":1}`, 422, "validation-failed", "function"},
		{"body too large", "POST", "/v1/tasks", "application/json", `{"function":"echo","args":"` + strings.Repeat("x", 2<<10) + `"}`, 413, "body-too-large", ""},
		{"not JSON", "POST", "/v1/tasks", "text/plain", `{"function":"echo"}`, 415, "unsupported-media-type", ""},
		{"wrong method", "PUT", "/v1/tasks", "", "", 405, "method-not-allowed", ""},
		{"unknown endpoint", "GET", "/v2/tasks", "", "", 404, "not-found", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, hdr, raw := b.do(t, c.method, c.path, c.ctype, c.body, nil)
			wantProblem(t, code, hdr, raw, c.status, c.kind)
			if c.detail != "" && !bytes.Contains(raw, []byte(c.detail)) {
				t.Errorf("detail of %s does not mention %q", raw, c.detail)
			}
		})
	}
	t.Run("no API key", func(t *testing.T) {
		code, hdr, raw := keyed.do(t, "GET", "/v1/tasks", "", "", nil)
		wantProblem(t, code, hdr, raw, 401, "unauthorized")
	})
	t.Run("nothing enqueued for the rejected", func(t *testing.T) {
		if st := memq.Stats(b.queue); st.Sent != 4 {
			t.Errorf("sent %d messages; want the 4 accepted tasks only", st.Sent)
		}
	})
	t.Run("result of a succeeded task", func(t *testing.T) {
		code, _, raw := b.do(t, "GET", "/v1/tasks/"+done+"/result", "", "", nil)
		if code != http.StatusOK || string(raw) != `"ok"` {
			t.Errorf("got %d %s; want 200 \"ok\"", code, raw)
		}
	})
}

// TestReadyz: /readyz answers 200 while queue, bucket and store answer,
// and 503, a problem naming the dependency that does not, otherwise. (The
// queue's check asks the driver where it can, SQS GetQueueAttributes; an
// in-process memq queue always answers, so its case is not here.)
func TestReadyz(t *testing.T) {
	cases := []struct {
		name  string
		check string
		stop  func(*httpBundle) error
	}{
		{"all reachable", "", nil},
		{"bucket", "bucket", func(b *httpBundle) error { return b.bucket.Close() }},
		{"store", "store", func(b *httpBundle) error { return b.store.Close() }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := setupHTTP(t, Config{})
			if c.stop != nil {
				if err := c.stop(b); err != nil {
					t.Fatal(err)
				}
			}
			code, hdr, raw := b.do(t, "GET", "/readyz", "", "", nil)
			var doc struct {
				Type   string            `json:"type"`
				Checks map[string]string `json:"checks"`
			}
			if err := json.Unmarshal(raw, &doc); err != nil {
				t.Fatalf("%d %s: %v", code, raw, err)
			}
			for _, dep := range []string{"queue", "bucket", "store"} {
				if ok := doc.Checks[dep] == "ok"; ok == (dep == c.check) {
					t.Errorf("check %s = %q in %s", dep, doc.Checks[dep], raw)
				}
			}
			if c.check == "" {
				if code != http.StatusOK {
					t.Fatalf("got %d %s; want 200", code, raw)
				}
				return
			}
			if code != http.StatusServiceUnavailable || doc.Type != "urn:drover:problem:unavailable" || hdr.Get("Content-Type") != "application/problem+json" {
				t.Fatalf("got %d %s; want a 503 unavailable problem", code, raw)
			}
		})
	}
}
