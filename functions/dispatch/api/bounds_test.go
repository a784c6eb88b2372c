package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/droverhq/drover/functions/dispatch/api"
	_ "github.com/droverhq/drover/internal/drivers"
	"github.com/droverhq/drover/internal/envconfig"
	"github.com/droverhq/drover/pkg/memq"
	"github.com/droverhq/drover/pkg/task"
)

var seq atomic.Int64

type bundle struct {
	url   string
	store *task.Store
	queue string
}

// setup serves the API over memq, a memstore and a memory bucket, as the
// embedded default does, on a real HTTP server (its deadlines included).
func setup(t *testing.T, cfg api.Config) bundle { t.Helper(); return setupQuery(t, cfg, "") }

// setupQuery is setup with query added to the tasks topic's memq URL.
func setupQuery(t *testing.T, cfg api.Config, query string) bundle {
	t.Helper()
	ctx := context.Background()
	n := seq.Add(1)
	q := fmt.Sprintf("api-bounds-%d", n)
	tasks, err := task.OpenTopic(ctx, "memq://"+q+query)
	if err != nil {
		t.Fatal(err)
	}
	store, err := task.OpenStore(ctx, fmt.Sprintf("memstore://api-bounds-%d/id?expiry_field=expires_at", n))
	if err != nil {
		t.Fatal(err)
	}
	archive, err := task.OpenArchive(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(api.New(tasks, archive, store, nil, cfg))
	srv.Config.ReadHeaderTimeout = 10 * time.Second
	srv.Start()
	t.Cleanup(func() {
		srv.Close()
		_ = tasks.Shutdown(ctx)
		_ = store.Close()
		memq.Delete(q)
	})
	return bundle{url: srv.URL, store: store, queue: q}
}

func (b bundle) post(t *testing.T, path, body string, hdr ...string) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, b.url+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return do(t, req)
}

func (b bundle) get(t *testing.T, path string) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, b.url+path, nil)
	return do(t, req)
}

func do(t *testing.T, req *http.Request) (int, http.Header, []byte) {
	t.Helper()
	resp, err := (&http.Client{Timeout: 2 * time.Minute}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, raw
}

func (b bundle) queued() int { return memq.Stats(b.queue).Len() }

// TestKeyReusedWithAnotherRequest: a key names one request; reused with a
// different one it is refused with 422 naming the key, and nothing more
// is enqueued (finding 3). The same request again is a replay.
func TestKeyReusedWithAnotherRequest(t *testing.T) {
	b := setup(t, api.Config{})
	code, _, raw := b.post(t, "/v1/tasks", `{"function":"echo","args":{"a":1},"idempotency_key":"key-3"}`)
	if code != http.StatusAccepted {
		t.Fatalf("first: %d %s", code, raw)
	}
	var first task.Status
	_ = json.Unmarshal(raw, &first)
	for name, body := range map[string]string{
		"other function":     `{"function":"sleep","args":{"a":1},"idempotency_key":"key-3"}`,
		"other max_attempts": `{"function":"echo","args":{"a":1},"max_attempts":5,"idempotency_key":"key-3"}`,
		"other args":         `{"function":"echo","args":{"a":2},"idempotency_key":"key-3"}`,
	} {
		code, _, raw := b.post(t, "/v1/tasks", body)
		if code != http.StatusUnprocessableEntity || !bytes.Contains(raw, []byte("key-3")) {
			t.Errorf("%s: %d %s, want 422 naming the key", name, code, raw)
		}
	}
	// A replay (whitespace aside, and defaults spelt out) is the first task.
	code, _, raw = b.post(t, "/v1/tasks", `{"function":"echo","args":{ "a": 1 },"max_attempts":3,"queue":"default","idempotency_key":"key-3"}`)
	var again task.Status
	_ = json.Unmarshal(raw, &again)
	if code != http.StatusAccepted || again.ID != first.ID {
		t.Fatalf("replay: %d %s, want 202 with %s", code, raw, first.ID)
	}
	if n := b.queued(); n != 1 {
		t.Fatalf("%d messages enqueued, want 1", n)
	}
}

// TestBatchRepeatsKey: one key twice in a batch is a 422, and the batch
// enqueues and claims nothing (finding 3).
func TestBatchRepeatsKey(t *testing.T) {
	b := setup(t, api.Config{})
	code, _, raw := b.post(t, "/v1/tasks/batch", `{"tasks":[{"function":"echo","idempotency_key":"a"},{"function":"echo","idempotency_key":"dup"},{"function":"sleep","idempotency_key":"dup"}]}`)
	if code != http.StatusUnprocessableEntity || !bytes.Contains(raw, []byte(`tasks[2].idempotency_key`)) || !bytes.Contains(raw, []byte(`tasks[1]`)) {
		t.Fatalf("%d %s, want 422 naming tasks[2] and tasks[1]", code, raw)
	}
	if n := b.queued(); n != 0 {
		t.Fatalf("%d messages enqueued, want 0", n)
	}
	for _, k := range []string{"a", "dup"} {
		if c, err := b.store.ReadKey(context.Background(), k); err != nil || c != nil {
			t.Fatalf("key %q left claimed: %+v %v", k, c, err)
		}
	}
}

// TestReplayAfterStatusGone: a replay inside the key's window returns the
// first task even once its status document is gone (expired, evicted),
// and enqueues nothing (finding 1).
func TestReplayAfterStatusGone(t *testing.T) {
	b := setup(t, api.Config{})
	body := `{"function":"echo","args":{"x":1},"idempotency_key":"evicted"}`
	code, _, raw := b.post(t, "/v1/tasks", body)
	var first task.Status
	if code != http.StatusAccepted || json.Unmarshal(raw, &first) != nil {
		t.Fatalf("first: %d %s", code, raw)
	}
	if err := b.store.DeleteMany(context.Background(), []string{first.ID}); err != nil {
		t.Fatal(err)
	}
	code, _, raw = b.post(t, "/v1/tasks", body)
	var again task.Status
	_ = json.Unmarshal(raw, &again)
	if code != http.StatusAccepted || again.ID != first.ID || again.Function != "echo" {
		t.Fatalf("replay: %d %s, want 202 with %s", code, raw, first.ID)
	}
	if n := b.queued(); n != 1 {
		t.Fatalf("%d messages enqueued, want 1", n)
	}
}

// TestFieldNamesExact: duplicate members and case-folded names are
// refused, as strict decoding promises (finding 6).
func TestFieldNamesExact(t *testing.T) {
	b := setup(t, api.Config{})
	for name, c := range map[string]struct{ path, body, want string }{
		"twice":            {"/v1/tasks", `{"function":"echo","function":"sleep"}`, "function"},
		"case-folded":      {"/v1/tasks", `{"FUNCTION":"echo"}`, "FUNCTION"},
		"batch twice":      {"/v1/tasks/batch", `{"tasks":[{"function":"echo"}],"tasks":[{"function":"sleep"}]}`, "tasks"},
		"batch task twice": {"/v1/tasks/batch", `{"tasks":[{"function":"echo"},{"function":"echo","max_attempts":1,"max_attempts":9}]}`, "tasks[1].max_attempts"},
		"batch task case":  {"/v1/tasks/batch", `{"tasks":[{"Function":"echo"}]}`, "tasks[0].Function"},
		"batch case":       {"/v1/tasks/batch", `{"Tasks":[{"function":"echo"}]}`, "Tasks"},
	} {
		code, _, raw := b.post(t, c.path, c.body)
		if code != http.StatusBadRequest || !bytes.Contains(raw, []byte(c.want)) {
			t.Errorf("%s: %d %s, want 400 naming %s", name, code, raw, c.want)
		}
	}
	// args are the caller's: their members are not looked into.
	if code, _, raw := b.post(t, "/v1/tasks", `{"function":"echo","args":{"A":1,"a":1}}`); code != http.StatusAccepted {
		t.Fatalf("args with case-distinct members: %d %s", code, raw)
	}
	if n := b.queued(); n != 1 {
		t.Fatalf("%d messages enqueued, want 1", n)
	}
}

// TestAPIKeys: configured keys are trimmed; every key works; a wrong or
// missing token is 401 (finding 6).
func TestAPIKeys(t *testing.T) {
	k1, k2 := "key-one-0123456789", "key-two-0123456789"
	b := setup(t, api.Config{APIKeys: []string{k1, " " + k2 + " ", ""}})
	for name, c := range map[string]struct {
		auth string
		want int
	}{
		"first key":  {"Bearer " + k1, http.StatusOK},
		"second key": {"Bearer " + k2, http.StatusOK},
		"wrong key":  {"Bearer " + k2 + "x", http.StatusUnauthorized},
		"prefix":     {"Bearer key-two", http.StatusUnauthorized},
		"empty":      {"Bearer ", http.StatusUnauthorized},
		"no scheme":  {k1, http.StatusUnauthorized},
		"none":       {"", http.StatusUnauthorized},
	} {
		req, _ := http.NewRequest(http.MethodGet, b.url+"/v1/tasks", nil)
		if c.auth != "" {
			req.Header.Set("Authorization", c.auth)
		}
		if code, _, raw := do(t, req); code != c.want {
			t.Errorf("%s: %d %s, want %d", name, code, raw, c.want)
		}
	}
}

// TestCanonicalIDs: task IDs and cursors are ULIDs, which are
// case-insensitive: a lowercased one names the same task or page
// (finding 6: it used to pass validation and match nothing).
func TestCanonicalIDs(t *testing.T) {
	b := setup(t, api.Config{})
	var ids []string
	for i := range 3 {
		code, _, raw := b.post(t, "/v1/tasks", fmt.Sprintf(`{"function":"echo","args":%d}`, i))
		var st task.Status
		if code != http.StatusAccepted || json.Unmarshal(raw, &st) != nil {
			t.Fatalf("submit: %d %s", code, raw)
		}
		ids = append(ids, st.ID)
	}
	code, _, raw := b.get(t, "/v1/tasks/"+strings.ToLower(ids[0]))
	var st task.Status
	if code != http.StatusOK || json.Unmarshal(raw, &st) != nil || st.ID != ids[0] {
		t.Fatalf("get by lowercase ID: %d %s, want %s", code, raw, ids[0])
	}
	page := func(cursor string) []string {
		code, _, raw := b.get(t, "/v1/tasks?limit=10&cursor="+cursor)
		var p struct{ Tasks []task.Status }
		if code != http.StatusOK || json.Unmarshal(raw, &p) != nil {
			t.Fatalf("list: %d %s", code, raw)
		}
		var out []string
		for _, s := range p.Tasks {
			out = append(out, s.ID)
		}
		return out
	}
	upper, lower := page(ids[2]), page(strings.ToLower(ids[2]))
	if fmt.Sprint(upper) != fmt.Sprint(lower) || len(upper) != 2 {
		t.Fatalf("page after %s: %v; after its lowercase: %v; want the 2 older tasks both times", ids[2], upper, lower)
	}
}

// rawConn opens a TCP connection to the server and writes a request's
// head (the body is the caller's to send, or not).
func rawConn(t *testing.T, url, head string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if _, err := io.WriteString(c, head); err != nil {
		t.Fatal(err)
	}
	return c
}

// readResponse reads one response from c within wait (a wide bound: the
// test is about whether it comes, not how fast), and reports whether the
// server then closed the connection.
func readResponse(t *testing.T, c net.Conn, wait time.Duration) (*http.Response, bool) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(wait))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no response within %s: %v", wait, err)
	}
	_, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	_, err = br.ReadByte()
	return resp, err == io.EOF
}

// TestUnauthorizedBodyNotRead: with API keys set, a request without a key
// is answered 401 from its headers alone, and its connection closed, even
// though its body never comes (finding 4).
func TestUnauthorizedBodyNotRead(t *testing.T) {
	b := setup(t, api.Config{APIKeys: []string{"key-one-0123456789"}, BodyTimeout: time.Hour})
	c := rawConn(t, b.url, "POST /v1/tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{")
	resp, closed := readResponse(t, c, 30*time.Second)
	if resp.StatusCode != http.StatusUnauthorized || !closed {
		t.Fatalf("%d, connection closed %v; want 401 and closed", resp.StatusCode, closed)
	}
}

// TestSlowBody: a body trickling in slower than BodyTimeout allows is cut
// off with 408 and its connection closed, while /healthz answers
// (finding 4).
func TestSlowBody(t *testing.T) {
	b := setup(t, api.Config{BodyTimeout: time.Second})
	c := rawConn(t, b.url, "POST /v1/tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n")
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(300 * time.Millisecond):
			}
			if _, err := c.Write([]byte(" ")); err != nil {
				return
			}
		}
	}()
	if code, _, raw := b.get(t, "/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz during a slow body: %d %s", code, raw)
	}
	resp, closed := readResponse(t, c, time.Minute)
	if resp.StatusCode != http.StatusRequestTimeout || !closed {
		t.Fatalf("%d, connection closed %v; want 408 and closed", resp.StatusCode, closed)
	}
	if n := b.queued(); n != 0 {
		t.Fatalf("%d messages enqueued, want 0", n)
	}
}

// TestInflightBytesCapped: while request bodies hold MaxInflight bytes, a
// further submit is refused with 503 and Retry-After before its body is
// read, and nothing of it is enqueued; once they are gone, submits are
// accepted again (finding 5).
func TestInflightBytesCapped(t *testing.T) {
	b := setup(t, api.Config{MaxBody: 1 << 20, MaxInflight: 1 << 20, BodyTimeout: time.Hour})
	// Holds the whole budget: announces 1 MiB and sends a byte.
	hog := rawConn(t, b.url, fmt.Sprintf("POST /v1/tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{", 1<<20))
	var code int
	var hdr http.Header
	var raw []byte
	deadline := time.Now().Add(time.Minute)
	for {
		// The hog's reservation is made once its handler runs.
		code, hdr, raw = b.post(t, "/v1/tasks", `{"function":"echo"}`)
		if code != http.StatusAccepted || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" {
		t.Fatalf("%d %s (Retry-After %q), want 503 with Retry-After", code, raw, hdr.Get("Retry-After"))
	}
	before := b.queued()
	if code, _, _ := b.post(t, "/v1/tasks", `{"function":"echo"}`); code != http.StatusServiceUnavailable {
		t.Fatalf("second submit while full: %d", code)
	}
	if n := b.queued(); n != before {
		t.Fatalf("a refused submit enqueued: %d → %d", before, n)
	}
	_ = hog.Close()
	deadline = time.Now().Add(time.Minute)
	for {
		code, _, raw = b.post(t, "/v1/tasks", `{"function":"echo"}`)
		if code == http.StatusAccepted || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code != http.StatusAccepted {
		t.Fatalf("after the hog left: %d %s", code, raw)
	}
}

// TestQueuedBytesCapped: on the embedded default the tasks queue holds at
// most its cap of message bytes (finding 5); a batch that would pass it
// is refused whole with 503 and Retry-After, and nothing of it is kept:
// no message, no status, no idempotency claim (the keys work afterwards).
func TestQueuedBytesCapped(t *testing.T) {
	b := setupQuery(t, api.Config{}, "?maxbytes=8192")
	batch := func(n, size int, key string) string {
		var sb strings.Builder
		sb.WriteString(`{"tasks":[`)
		for i := range n {
			if i > 0 {
				sb.WriteByte(',')
			}
			fmt.Fprintf(&sb, `{"function":"echo","args":{"pad":%q},"idempotency_key":"%s-%d"}`, strings.Repeat("x", size), key, i)
		}
		sb.WriteString(`]}`)
		return sb.String()
	}
	code, hdr, raw := b.post(t, "/v1/tasks/batch", batch(20, 1000, "big"))
	if code != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" || !strings.Contains(string(raw), "full") {
		t.Fatalf("%d %s (Retry-After %q), want 503 naming the full queue, with Retry-After", code, raw, hdr.Get("Retry-After"))
	}
	if n := b.queued(); n != 0 {
		t.Fatalf("a refused batch left %d messages", n)
	}
	if code, _, raw := b.get(t, "/v1/tasks"); code != http.StatusOK || strings.Contains(string(raw), `"id"`) {
		t.Fatalf("a refused batch left statuses: %d %s", code, raw)
	}
	// Within the cap, with the keys of the refused batch: accepted.
	if code, _, raw := b.post(t, "/v1/tasks/batch", batch(3, 1000, "big")); code != http.StatusAccepted {
		t.Fatalf("a batch within the cap: %d %s", code, raw)
	}
	if n := b.queued(); n != 3 {
		t.Fatalf("queued %d, want 3", n)
	}
}

// TestEnvTrimsAPIKeys: DROVER_API_KEYS="k1, k2" names k1 and k2, so that
// "Bearer k2" is accepted (finding 6: it was refused, "Bearer  k2" not).
func TestEnvTrimsAPIKeys(t *testing.T) {
	e := &api.Env{TasksTopic: "memq://x", Bucket: "mem://", Status: "mem://x/id", Addr: "0.0.0.0:8080",
		APIKeys: []string{"key-one-0123456789", " key-two-0123456789", " "}, Log: envconfig.Log{Level: "info"}}
	if err := e.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(e.APIKeys); got != "[key-one-0123456789 key-two-0123456789]" {
		t.Fatalf("keys %s, want both trimmed and the empty one dropped", got)
	}
}
