package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"gocloud.dev/blob"
	_ "gocloud.dev/blob/memblob"
	_ "gocloud.dev/docstore/memdocstore"

	"github.com/droverhq/drover/pkg/memq"
	"github.com/droverhq/drover/pkg/task"
)

var fuzzSeq atomic.Int64

// fuzzServer is a Server over a fresh memq queue, memory bucket and store.
func fuzzServer(t testing.TB) (*Server, string, *blob.Bucket) {
	ctx := context.Background()
	q := fmt.Sprintf("fuzz-%d", fuzzSeq.Add(1))
	tp, err := task.OpenTopic(ctx, "memq://"+q)
	if err != nil {
		t.Fatal(err)
	}
	b, err := blob.OpenBucket(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	st, err := task.OpenStore(ctx, fmt.Sprintf("mem://fuzz-%s/id", q))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tp.Shutdown(ctx); memq.Delete(q) })
	return New(tp, task.NewArchive(b), st, nil, Config{MaxBody: 1 << 20, PayloadLimit: 1 << 10}), q, b
}

func countBlobs(b *blob.Bucket) int {
	n := 0
	it := b.List(nil)
	for {
		if _, err := it.Next(context.Background()); err != nil {
			return n
		}
		n++
	}
}

// checkSubmit posts body to path and checks the contract of every answer:
// no panic, non-2xx is a problem document and leaves nothing enqueued or
// archived, 2xx only for a body that is valid JSON and names a function.
func checkSubmit(t *testing.T, s *Server, q string, b *blob.Bucket, path string, body []byte) {
	sent, blobs := memq.Stats(q).Sent, countBlobs(b)
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	s.ServeHTTP(w, req)
	code, ctype := w.Code, w.Header().Get("Content-Type")
	if code >= 200 && code < 300 {
		if !json.Valid(body) || !bytes.Contains(body, []byte(`"function"`)) {
			t.Fatalf("%d for invalid body %q", code, body)
		}
		if memq.Stats(q).Sent <= sent && !bytes.Contains(body, []byte("idempotency_key")) {
			t.Fatalf("%d but nothing enqueued for %q", code, body)
		}
		return
	}
	if code < 400 || code >= 500 || ctype != "application/problem+json" {
		t.Fatalf("%d %s for %q: %s", code, ctype, body, w.Body)
	}
	var p struct {
		Type, Title, Detail string
		Status              int
	}
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil || p.Status != code || p.Type == "" || p.Detail == "" {
		t.Fatalf("problem %q (%v) for %q", w.Body, err, body)
	}
	if n := memq.Stats(q).Sent; n != sent {
		t.Fatalf("rejected %q (%d) but enqueued %d messages", body, code, n-sent)
	}
	if n := countBlobs(b); n != blobs {
		t.Fatalf("rejected %q (%d) but archived %d blobs", body, code, n-blobs)
	}
}

// FuzzSubmit fuzzes POST /v1/tasks bodies.
func FuzzSubmit(f *testing.F) {
	for _, s := range []string{
		`{"function":"echo"}`,
		`{"function":"echo","args":{"a":[1,2,{"b":null}]},"queue":"q","timeout":"30s","max_attempts":3,"idempotency_key":"k","delay":"1s"}`,
		`{"function":"echo","args":"` + strings.Repeat("x", 2000) + `"}`,
		`{"function":"echo","functon":"x"}`,
		`{"function":"echo","timeout":"soon"}`,
		`{"function":"echo","timeout":30}`,
		`{"function":"echo","max_attempts":-1}`,
		`{"function":"../x"}`,
		`{"function":"echo"} {}`,
		"{\"function\":\"echo\",\"args\":\"\xff\"}",
		strings.Repeat("[", 100) + strings.Repeat("]", 100),
		``, `null`, `{}`, `[]`, `"echo"`,
	} {
		f.Add([]byte(s))
	}
	s, q, b := fuzzServer(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		checkSubmit(t, s, q, b, "/v1/tasks", body)
	})
}

// FuzzSubmitBatch fuzzes POST /v1/tasks/batch bodies.
func FuzzSubmitBatch(f *testing.F) {
	for _, s := range []string{
		`{"tasks":[{"function":"echo"},{"function":"sleep","args":{"ms":1}}]}`,
		`{"tasks":[]}`,
		`{"tasks":[{"function":"echo"},{"function":""}]}`,
		`{"tasks":[{"function":"echo","idempotency_key":"a"},{"function":"echo","idempotency_key":"a"}]}`,
		`{"tasks":{}}`,
		`{"tasks":[{"function":"echo","delay":"-1s"}]}`,
	} {
		f.Add([]byte(s))
	}
	s, q, b := fuzzServer(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		checkSubmit(t, s, q, b, "/v1/tasks/batch", body)
	})
}
